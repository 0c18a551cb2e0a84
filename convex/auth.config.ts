import type { AuthConfig } from "convex/server";

// Who may call this backend: any OpenID Connect / JWT issuer, set per deployment with env (the
// README's deploy section names the values for Clerk, Auth0 and Convex Auth). A push evaluates
// this file against the deployment's env: with either variable unset it fails, naming it, before
// any function is deployed. Runs belong to the token's `tokenIdentifier` (issuer + subject).
export default {
  providers: [
    {
      // The issuer URL: the JWT's `iss`, serving /.well-known/openid-configuration.
      // eslint-disable-next-line @convex-dev/no-process-env -- the push evaluates this file against the deployment's env and names any variable read here that is unset
      domain: process.env.AUTH_ISSUER_URL!,
      // The audience: the JWT's `aud`.
      // eslint-disable-next-line @convex-dev/no-process-env -- as above
      applicationID: process.env.AUTH_APPLICATION_ID!,
    },
  ],
} satisfies AuthConfig;
