package faults

// Reference consumer faults (K and S checks). Constants are prefixed CC
// (credential provider consumer). Every one is armable: the reference
// consumer (fakes/credprovider/consumer) reads its fault set on each config
// load and pull, so a proof arms the fault after the suite's fixtures exist.
const (
	CCMatchIgnored            Fault = "consumer-match-ignored"
	CCMatchPortLoose          Fault = "consumer-match-port-loose"
	CCMatchPathGlob           Fault = "consumer-match-path-glob"
	CCMatchHostSuffix         Fault = "consumer-match-host-suffix"
	CCRequestImageRaw         Fault = "consumer-request-image-raw"
	CCEnvHostWins             Fault = "consumer-env-host-wins"
	CCCacheNoExpiry           Fault = "consumer-cache-no-expiry"
	CCCacheZeroDuration       Fault = "consumer-cache-zero-duration"
	CCDefaultDurationIgnored  Fault = "consumer-default-duration-ignored"
	CCImageKeyWithTag         Fault = "consumer-image-key-with-tag"
	CCRegistryKeyNoPort       Fault = "consumer-registry-key-no-port"
	CCGlobalKeyAsImage        Fault = "consumer-global-key-as-image"
	CCCacheKeyTypeLax         Fault = "consumer-cache-key-type-lax"
	CCDecodeLax               Fault = "consumer-decode-lax"
	CCExitStatusIgnored       Fault = "consumer-exit-status-ignored"
	CCDeadlineIgnored         Fault = "consumer-deadline-ignored"
	CCWaitForPluginChildren   Fault = "consumer-wait-for-plugin-children"
	CCNoSingleflight          Fault = "consumer-no-singleflight"
	CCProviderOrderReversed   Fault = "consumer-provider-order-reversed"
	CCConfigUnvalidated       Fault = "consumer-config-unvalidated"
	CCTokenAttrsUnvalidated   Fault = "consumer-token-attributes-unvalidated"
	CCConfigDirUnsorted       Fault = "consumer-config-dir-unsorted"
	CCTokenAudienceWrong      Fault = "consumer-token-audience-wrong"
	CCAnnotationsAll          Fault = "consumer-annotations-all"
	CCRequiredAnnotationLax   Fault = "consumer-required-annotation-lax"
	CCNoSAInvoked             Fault = "consumer-no-sa-invoked"
	CCCacheIgnoresSA          Fault = "consumer-cache-ignores-sa"
	CCSACacheByToken          Fault = "consumer-sa-cache-by-token"
	CCTokenCacheIgnoresToken  Fault = "consumer-token-cache-ignores-token"
	CCCacheIgnoresSAUID       Fault = "consumer-cache-ignores-sa-uid"
	CCCacheIgnoresAnnotations Fault = "consumer-cache-ignores-annotations"
	CCCacheIgnoresNamespace   Fault = "consumer-cache-ignores-namespace"
	CCEchoGuardMissing        Fault = "consumer-echo-guard-missing"
	CCTokenToAllProviders     Fault = "consumer-token-to-all-providers"
	CCSingleflightIgnoresSA   Fault = "consumer-singleflight-ignores-sa"
)

// consumerLayer: every consumer fault is a behaviour switch of the
// reference consumer's pull path or config loader.
const consumerLayer Layer = "consumer"

var credConsumerFaults = []Info{
	{CCMatchIgnored, consumerLayer, "matchImages is ignored: every provider is invoked for every image"},
	{CCMatchPortLoose, consumerLayer, "a pattern without a port matches the host on any port"},
	{CCMatchPathGlob, consumerLayer, "the pattern's path is matched as a glob, not as a string prefix"},
	{CCMatchHostSuffix, consumerLayer, "a host pattern matches any host ending in it (part count not compared)"},
	{CCRequestImageRaw, consumerLayer, "the request's image is the reference as written (tag, digest, short name), not the normalized repository"},
	{CCEnvHostWins, consumerLayer, "the consumer's own environment overrides the provider's configured env"},
	{CCCacheNoExpiry, consumerLayer, "cached credentials never expire"},
	{CCCacheZeroDuration, consumerLayer, "an explicit cacheDuration 0 is treated as omitted (defaultCacheDuration applies)"},
	{CCDefaultDurationIgnored, consumerLayer, "an omitted cacheDuration is not cached (defaultCacheDuration ignored)"},
	{CCImageKeyWithTag, consumerLayer, "the Image cache key is the reference as written, tag included"},
	{CCRegistryKeyNoPort, consumerLayer, "the Registry cache key drops the port"},
	{CCGlobalKeyAsImage, consumerLayer, "a Global response is cached under the image key"},
	{CCCacheKeyTypeLax, consumerLayer, "a missing or unknown cacheKeyType is read as Image instead of discarding the response"},
	{CCDecodeLax, consumerLayer, "responses are decoded leniently: apiVersion not compared, unknown fields and leading text ignored"},
	{CCExitStatusIgnored, consumerLayer, "a plugin's non-zero exit is ignored when stdout holds a response"},
	{CCDeadlineIgnored, consumerLayer, "plugins run without the exec deadline"},
	{CCWaitForPluginChildren, consumerLayer, "after killing a plugin at the deadline, the consumer waits for its stdout to close, so a child the plugin left holding it blocks the pull"},
	{CCNoSingleflight, consumerLayer, "concurrent pulls of one image each exec the plugin"},
	{CCProviderOrderReversed, consumerLayer, "credentials of later providers are offered before earlier ones"},
	{CCConfigUnvalidated, consumerLayer, "the provider config is not validated (names, apiVersion, matchImages, durations)"},
	{CCTokenAttrsUnvalidated, consumerLayer, "tokenAttributes are not validated"},
	{CCConfigDirUnsorted, consumerLayer, "a config directory is merged in reverse order and duplicate names across files are accepted"},
	{CCTokenAudienceWrong, consumerLayer, "the service-account token is requested for the API server's audience, not the configured one"},
	{CCAnnotationsAll, consumerLayer, "every service-account annotation is sent, not only the configured keys"},
	{CCRequiredAnnotationLax, consumerLayer, "a missing required annotation does not stop the plugin from being invoked"},
	{CCNoSAInvoked, consumerLayer, "a pod without a service account invokes a provider that requires one"},
	{CCCacheIgnoresSA, consumerLayer, "the cache key has no service-account partition"},
	{CCSACacheByToken, consumerLayer, "ServiceAccount cache mode keys entries by token hash too (pods of one SA never share)"},
	{CCTokenCacheIgnoresToken, consumerLayer, "Token cache mode keys entries without the token hash"},
	{CCCacheIgnoresSAUID, consumerLayer, "the service-account partition omits the SA UID"},
	{CCCacheIgnoresAnnotations, consumerLayer, "the service-account partition omits the selected annotations"},
	{CCCacheIgnoresNamespace, consumerLayer, "the service-account partition omits the namespace"},
	{CCEchoGuardMissing, consumerLayer, "a response whose password is the service-account token is accepted in ServiceAccount cache mode"},
	{CCTokenToAllProviders, consumerLayer, "the service-account token is sent to providers without tokenAttributes too"},
	{CCSingleflightIgnoresSA, consumerLayer, "the singleflight key is the image only, also in service-account mode"},
}

// IsCredConsumerFault reports whether f is a reference consumer fault (the
// target's Arm routes it to the consumer, the others to the plugin).
func IsCredConsumerFault(f Fault) bool {
	for _, i := range credConsumerFaults {
		if i.Name == f {
			return true
		}
	}
	return false
}
