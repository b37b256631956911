package faults

// Reference credential provider plugin faults (P checks). Constants are
// prefixed CP (credential provider plugin). The reference plugin is exec'd
// afresh for every request and reads its script (faults included) on each
// exec, so every fault is armable on a running target.
const (
	CPInScopeFails            Fault = "cp-in-scope-fails"
	CPWrongKind               Fault = "cp-wrong-kind"
	CPUnknownField            Fault = "cp-unknown-field"
	CPDuplicateField          Fault = "cp-duplicate-field"
	CPStdoutLog               Fault = "cp-stdout-log"
	CPEmptyNoCacheKeyType     Fault = "cp-empty-no-cache-key-type"
	CPAuthKeyMismatch         Fault = "cp-auth-key-mismatch"
	CPOutOfScopeNoDuration    Fault = "cp-out-of-scope-no-cache-duration"
	CPCacheOutlivesCredential Fault = "cp-cache-outlives-credential"
	CPExpiredNilDuration      Fault = "cp-expired-nil-cache-duration"
	CPAnswersV1Always         Fault = "cp-answers-v1-always"
	CPAcceptsUnknownVersion   Fault = "cp-accepts-unknown-api-version"
	CPEmptyImageAnswered      Fault = "cp-empty-image-answered"
	CPInvalidJSONStdout       Fault = "cp-invalid-json-stdout-on-error"
	CPSlow                    Fault = "cp-slow"
	CPChildHoldsStdout        Fault = "cp-child-holds-stdout"
	CPLogsSecrets             Fault = "cp-logs-secrets"
	CPIgnoresConfigEnv        Fault = "cp-ignores-config-env"
	CPIgnoresConfigArgs       Fault = "cp-ignores-config-args"
	CPEchoesToken             Fault = "cp-echoes-token"
	CPAcceptsWrongAudience    Fault = "cp-accepts-wrong-audience"
	CPNoTokenFails            Fault = "cp-no-token-fails"
	CPSharedScratchFile       Fault = "cp-shared-scratch-file"
)

// pluginExec: the fault acts inside one exec of the plugin binary.
const pluginExec Layer = "plugin-exec"

var credPluginFaults = []Info{
	{CPInScopeFails, pluginExec, "exits 1 (\"registry unavailable\") on every in-scope request"},
	{CPWrongKind, pluginExec, "answers with kind CredentialProviderRequest instead of CredentialProviderResponse"},
	{CPUnknownField, pluginExec, "adds an unknown field (expiresAt) to the response"},
	{CPDuplicateField, pluginExec, "writes the cacheKeyType field twice in the response"},
	{CPStdoutLog, pluginExec, "prints a progress line on stdout before the JSON response"},
	{CPEmptyNoCacheKeyType, pluginExec, "omits cacheKeyType when it returns no credentials"},
	{CPAuthKeyMismatch, pluginExec, "returns credentials keyed for another registry than the requested image's"},
	{CPOutOfScopeNoDuration, pluginExec, "answers an out-of-scope image with empty auth and no cacheDuration (the kubelet caches the miss for defaultCacheDuration)"},
	{CPCacheOutlivesCredential, pluginExec, "returns cacheDuration 12h whatever the credential's lifetime"},
	{CPExpiredNilDuration, pluginExec, "omits cacheDuration for an already-expired credential (ecr-credential-provider's nil pitfall)"},
	{CPAnswersV1Always, pluginExec, "answers every request in credentialprovider.kubelet.k8s.io/v1 whatever its apiVersion"},
	{CPAcceptsUnknownVersion, pluginExec, "answers requests of an unsupported apiVersion instead of failing"},
	{CPEmptyImageAnswered, pluginExec, "answers a request with an empty image with exit 0 and a response"},
	{CPInvalidJSONStdout, pluginExec, "writes an error document to stdout when the request is not valid JSON"},
	{CPSlow, pluginExec, "sleeps 90 s before answering"},
	{CPChildHoldsStdout, pluginExec, "starts a helper child that inherits stdout/stderr and outlives the plugin by 30 s"},
	{CPLogsSecrets, pluginExec, "logs the service-account token and the returned password on stderr"},
	{CPIgnoresConfigEnv, pluginExec, "ignores the username configured by env in the CredentialProviderConfig"},
	{CPIgnoresConfigArgs, pluginExec, "ignores the --password-prefix arg configured in the CredentialProviderConfig"},
	{CPEchoesToken, pluginExec, "returns the service-account token as the password (cacheType ServiceAccount forbids it)"},
	{CPAcceptsWrongAudience, pluginExec, "accepts a service-account token whatever its audience"},
	{CPNoTokenFails, pluginExec, "fails requests without a service-account token, against its declared contract"},
	{CPSharedScratchFile, pluginExec, "stages each request's image in one shared scratch file: concurrent execs answer for each other's images"},
}
