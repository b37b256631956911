package faults

// Layers of the authz catalogue. Webhook faults make the reference webhook
// under test (AZ01–AZ05) misbehave; chain faults change how the embedded
// chain target is assembled from the upstream k8s.io/apiserver pieces or how
// its SubjectAccessReview front end reports, because the chain itself is
// upstream code and has no fault hooks. Both are armable: the embedded chain
// rebuilds itself atomically, the way kube-apiserver swaps a reloaded chain.
const (
	azWebhook Layer = "webhook"
	azChain   Layer = "chain"
)

// Authz faults.
const (
	AZWrongAPIVersion        Fault = "az-wrong-api-version"
	AZAllowedAndDenied       Fault = "az-allowed-and-denied"
	AZNoOpinionWithoutReason Fault = "az-no-opinion-without-reason"
	AZAllowOnMalformed       Fault = "az-allow-on-malformed"
	AZSlowWebhook            Fault = "az-slow-webhook"

	AZChainNoShortCircuit       Fault = "az-chain-no-short-circuit"
	AZChainNoOpinionAllows      Fault = "az-chain-no-opinion-allows"
	AZChainIgnoresFailurePolicy Fault = "az-chain-ignores-failure-policy"
	AZChainAllowedDeniedAllows  Fault = "az-chain-allowed-denied-allows"
	AZChainIgnoresMatchConds    Fault = "az-chain-ignores-match-conditions"
	AZChainNoCache              Fault = "az-chain-no-cache"
	AZChainSkipsValidation      Fault = "az-chain-skips-validation"
	AZChainNoReload             Fault = "az-chain-no-reload"
)

// Authz is the authz suite's catalogue.
var Authz = NewCatalogue("authz",
	Info{AZWrongAPIVersion, azWebhook, "the reference webhook answers a v1 SubjectAccessReview as v1beta1 and a v1beta1 one as v1"},
	Info{AZAllowedAndDenied, azWebhook, "the reference webhook sets allowed: true on its deny answers (allowed and denied both true)"},
	Info{AZNoOpinionWithoutReason, azWebhook, "the reference webhook answers NoOpinion with an empty reason"},
	Info{AZAllowOnMalformed, azWebhook, "the reference webhook answers 200 allowed: true to a body it cannot decode"},
	Info{AZSlowWebhook, azWebhook, "the reference webhook answers every review a second after its configured timeout"},

	Info{AZChainNoShortCircuit, azChain, "the embedded chain replaces upstream's union with a loop that still calls every later authorizer after the first decision"},
	Info{AZChainNoOpinionAllows, azChain, "the embedded chain's SubjectAccessReview front end answers allowed when every authorizer had no opinion (fails open)"},
	Info{AZChainIgnoresFailurePolicy, azChain, "the embedded chain builds every webhook authorizer with failurePolicy NoOpinion, whatever the configuration says"},
	Info{AZChainAllowedDeniedAllows, azChain, "the embedded chain turns a webhook's deny-with-error (allowed and denied both true) into an allow"},
	Info{AZChainIgnoresMatchConds, azChain, "the embedded chain builds webhook authorizers without their matchConditions"},
	Info{AZChainNoCache, azChain, "the embedded chain builds webhook authorizers with caching off (cacheAuthorizedRequests/cacheUnauthorizedRequests false)"},
	Info{AZChainSkipsValidation, azChain, "the embedded chain decodes its configuration without validating it, at start-up and on reload"},
	Info{AZChainNoReload, azChain, "the embedded chain ignores changes to its configuration file"},
)
