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
import type * as actions_killIdleSandboxes from "../actions/killIdleSandboxes.js";
import type * as actions_reconcileSandboxes from "../actions/reconcileSandboxes.js";
import type * as actions_startSandboxRun from "../actions/startSandboxRun.js";
import type * as crons from "../crons.js";
import type * as lifecycle from "../lifecycle.js";
import type * as model_config from "../model/config.js";
import type * as model_reconcile from "../model/reconcile.js";
import type * as model_runs from "../model/runs.js";
import type * as model_status from "../model/status.js";
import type * as model_sweep from "../model/sweep.js";
import type * as reconcile from "../reconcile.js";

/**
 * A utility for referencing Convex functions in your app's API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```
 */
declare const fullApi: ApiFromModules<{
  "actions/killIdleSandboxes": typeof actions_killIdleSandboxes;
  "actions/reconcileSandboxes": typeof actions_reconcileSandboxes;
  "actions/startSandboxRun": typeof actions_startSandboxRun;
  crons: typeof crons;
  lifecycle: typeof lifecycle;
  "model/config": typeof model_config;
  "model/reconcile": typeof model_reconcile;
  "model/runs": typeof model_runs;
  "model/status": typeof model_status;
  "model/sweep": typeof model_sweep;
  reconcile: typeof reconcile;
}>;
export declare const api: FilterApi<
  typeof fullApi,
  FunctionReference<any, "public">
>;
export declare const internal: FilterApi<
  typeof fullApi,
  FunctionReference<any, "internal">
>;
