package faults

// The credprovider suite's catalogue: plugin faults (the reference plugin,
// P checks; credprovider_plugin.go) and consumer faults (the reference
// consumer, K/S checks; credprovider_consumer.go).
var CredProvider = NewCatalogue("credprovider", append(append([]Info(nil), credPluginFaults...), credConsumerFaults...)...)
