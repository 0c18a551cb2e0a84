// The builders every public function uses: the caller must be signed in (UNAUTHENTICATED
// otherwise, before the handler runs) and the handler reads the owner from `ctx.ownerId`.
// Internal functions keep the plain builders from _generated/server.
import { customAction, customCtx, customMutation, customQuery } from "convex-helpers/server/customFunctions";
import { action, mutation, query } from "../_generated/server";
import { requireOwner } from "./access";

const signedIn = customCtx(async (ctx: Parameters<typeof requireOwner>[0]) => ({
  ownerId: await requireOwner(ctx),
}));

export const ownerQuery = customQuery(query, signedIn);
export const ownerMutation = customMutation(mutation, signedIn);
export const ownerAction = customAction(action, signedIn);
