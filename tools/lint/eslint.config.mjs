// Lints the whole repo from this nested package: typescript-eslint needs TypeScript's JS API,
// which TypeScript 7 (the repo's compiler) no longer has, so this package pins TypeScript 6.
// Run from the repo root: `npm run lint`.
import convexPlugin from "@convex-dev/eslint-plugin";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

export default defineConfig([
  { ignores: ["**/node_modules/**", "convex/_generated/**", "bench/results/**"] },
  {
    files: ["**/*.ts", "**/*.tsx", "**/*.mjs"],
    extends: [tseslint.configs.recommended],
    rules: {
      // `const { ownerId, ...rest } = doc` is how a field is left out of a copy.
      "@typescript-eslint/no-unused-vars": ["error", { ignoreRestSiblings: true }],
    },
  },
  { extends: [convexPlugin.configs.recommended] },
]);
