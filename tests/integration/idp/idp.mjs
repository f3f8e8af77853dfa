// A real OpenID Provider for the SSO tests: panva's oidc-provider with one static client, PKCE required
// and the development login/consent screens (any login with any password signs in; the login becomes `sub`).
//
// Configured by environment variables (all set by tests/sso/peers.py):
//   IDP_PORT, IDP_CLIENT_ID, IDP_CLIENT_SECRET, IDP_REDIRECT_URI (one or more, space-separated),
//   IDP_POST_LOGOUT_REDIRECT_URI
// Prints `ready <issuer>` on stdout once it listens on 127.0.0.1:IDP_PORT.
//
// Accounts: a login that looks like an e-mail address is that address with `email_verified: true`; a login
// starting with `unverified.` keeps the address but with `email_verified: false`.
import Provider from 'oidc-provider';

const port = Number(process.env.IDP_PORT);
const issuer = `http://127.0.0.1:${port}`;

const configuration = {
  clients: [
    {
      client_id: process.env.IDP_CLIENT_ID,
      client_secret: process.env.IDP_CLIENT_SECRET,
      redirect_uris: process.env.IDP_REDIRECT_URI.split(' ').filter(Boolean),
      post_logout_redirect_uris: [process.env.IDP_POST_LOGOUT_REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // The defaults load a web font from the internet; tests reach loopback only.
      async logoutSource(ctx, form) {
        ctx.body = `<!doctype html><html><body><h1>Sign out of the test IdP?</h1>${form}
          <button id="op-logout" autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
          </body></html>`;
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = '<!doctype html><html><body><p id="op-signed-out">Signed out of the test IdP.</p></body></html>';
      },
    },
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Put the scope's claims into the ID token itself (the RP reads e-mail from it, not from userinfo).
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    const verified = !sub.startsWith('unverified.');
    const email = verified ? sub : sub.slice('unverified.'.length);
    return {
      accountId: sub,
      async claims() {
        return { sub, email, email_verified: verified, name: email.split('@')[0] };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);
provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
