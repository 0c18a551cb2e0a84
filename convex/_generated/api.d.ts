/* eslint-disable */
/**
 * Generated `api` utility.
 *
 * THIS CODE IS AUTOMATICALLY GENERATED.
 *
 * To regenerate, run `npx convex dev`.
 * @module
 */

import type {
  ApiFromModules,
  FilterApi,
  FunctionReference,
} from "convex/server";
import type * as actions_catchUpLifecycleEvents from "../actions/catchUpLifecycleEvents.js";
import type * as actions_killIdleSandboxes from "../actions/killIdleSandboxes.js";
import type * as actions_killWebhookSandbox from "../actions/killWebhookSandbox.js";
import type * as actions_pauseIdleSandboxes from "../actions/pauseIdleSandboxes.js";
import type * as actions_reconcileSandboxes from "../actions/reconcileSandboxes.js";
import type * as actions_registerE2BWebhook from "../actions/registerE2BWebhook.js";
import type * as actions_resumeSandboxRun from "../actions/resumeSandboxRun.js";
import type * as actions_runCommand from "../actions/runCommand.js";
import type * as actions_startSandboxRun from "../actions/startSandboxRun.js";
import type * as actions_stopSandboxRun from "../actions/stopSandboxRun.js";
import type * as admin from "../admin.js";
import type * as commands from "../commands.js";
import type * as crons from "../crons.js";
import type * as http from "../http.js";
import type * as lib_failures from "../lib/failures.js";
import type * as lib_util from "../lib/util.js";
import type * as lifecycle from "../lifecycle.js";
import type * as model_access from "../model/access.js";
import type * as model_activity from "../model/activity.js";
import type * as model_admission from "../model/admission.js";
import type * as model_config from "../model/config.js";
import type * as model_errors from "../model/errors.js";
import type * as model_functions from "../model/functions.js";
import type * as model_pause from "../model/pause.js";
import type * as model_reconcile from "../model/reconcile.js";
import type * as model_retention from "../model/retention.js";
import type * as model_runs from "../model/runs.js";
import type * as model_status from "../model/status.js";
import type * as model_sweep from "../model/sweep.js";
import type * as model_tags from "../model/tags.js";
import type * as model_validators from "../model/validators.js";
import type * as model_views from "../model/views.js";
import type * as model_webhooks from "../model/webhooks.js";
import type * as pauses from "../pauses.js";
import type * as reconcile from "../reconcile.js";
import type * as retention from "../retention.js";
import type * as runs from "../runs.js";
import type * as webhooks from "../webhooks.js";

/**
 * A utility for referencing Convex functions in your app's API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```
 */
declare const fullApi: ApiFromModules<{
  "actions/catchUpLifecycleEvents": typeof actions_catchUpLifecycleEvents;
  "actions/killIdleSandboxes": typeof actions_killIdleSandboxes;
  "actions/killWebhookSandbox": typeof actions_killWebhookSandbox;
  "actions/pauseIdleSandboxes": typeof actions_pauseIdleSandboxes;
  "actions/reconcileSandboxes": typeof actions_reconcileSandboxes;
  "actions/registerE2BWebhook": typeof actions_registerE2BWebhook;
  "actions/resumeSandboxRun": typeof actions_resumeSandboxRun;
  "actions/runCommand": typeof actions_runCommand;
  "actions/startSandboxRun": typeof actions_startSandboxRun;
  "actions/stopSandboxRun": typeof actions_stopSandboxRun;
  admin: typeof admin;
  commands: typeof commands;
  crons: typeof crons;
  http: typeof http;
  "lib/failures": typeof lib_failures;
  "lib/util": typeof lib_util;
  lifecycle: typeof lifecycle;
  "model/access": typeof model_access;
  "model/activity": typeof model_activity;
  "model/admission": typeof model_admission;
  "model/config": typeof model_config;
  "model/errors": typeof model_errors;
  "model/functions": typeof model_functions;
  "model/pause": typeof model_pause;
  "model/reconcile": typeof model_reconcile;
  "model/retention": typeof model_retention;
  "model/runs": typeof model_runs;
  "model/status": typeof model_status;
  "model/sweep": typeof model_sweep;
  "model/tags": typeof model_tags;
  "model/validators": typeof model_validators;
  "model/views": typeof model_views;
  "model/webhooks": typeof model_webhooks;
  pauses: typeof pauses;
  reconcile: typeof reconcile;
  retention: typeof retention;
  runs: typeof runs;
  webhooks: typeof webhooks;
}>;
export declare const api: FilterApi<
  typeof fullApi,
  FunctionReference<any, "public">
>;
export declare const internal: FilterApi<
  typeof fullApi,
  FunctionReference<any, "internal">
>;
