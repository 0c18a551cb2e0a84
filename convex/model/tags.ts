/**
 * Metadata keys every sandbox is tagged with at creation: who owns it, in which deployment.
 * Plain constants (no SDK import), so isolate code such as the webhook handler can read them.
 */
export const TAG_NAMESPACE = "convexNamespace";
export const TAG_RUN_ID = "convexRunId";
