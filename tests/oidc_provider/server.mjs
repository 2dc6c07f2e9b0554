// A real, certified OpenID provider (panva's oidc-provider) for the gateway's tests.
//
// Started by tests/oidc_provider.py as `node server.mjs '<json settings>'`. It listens on an
// ephemeral port of 127.0.0.1, prints one line `listening <issuer>` on stdout, and serves until
// killed. The settings name the clients and the provider's ID-token lifetime; the accounts are
// fixed below. Its development interactions give a plain login page (any password is accepted)
// that a browser or a scripted client fills in; consent is granted without asking.
import http from 'node:http';
import Provider from 'oidc-provider';

const settings = JSON.parse(process.argv[2] || '{}');

// Who may sign in, and their claims. Any password is accepted (development interactions).
const ACCOUNTS = {
  alice: { email: 'alice@example.com', email_verified: true, groups: ['admins', 'staff'] },
  bob: { email: 'bob@example.com', email_verified: true, groups: ['staff', 'unmapped'] },
  mallory: { email: 'mallory@example.com', email_verified: false, groups: ['staff'] },
};

const server = http.createServer();
server.listen(settings.port || 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: settings.clients || [],
    scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
      profile: ['name'],
    },
    // Scope claims in the ID token itself: the gateway reads only the ID token.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: { required: () => true },
    // Its SSRF guard refuses loopback addresses, where the test gateway listens (back-channel
    // logout posts to it): the provider's own fetch without that guard, for tests only.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    ttl: {
      IdToken: settings.idTokenTtl || 3600,
      AccessToken: 3600,
      AuthorizationCode: 60,
      Interaction: 3600,
      Session: 86400,
      Grant: 86400,
    },
    async findAccount(ctx, id) {
      const account = ACCOUNTS[id] || { email: `${id}@example.com`, email_verified: true, groups: [] };
      return {
        accountId: id,
        async claims() {
          return { sub: id, name: id, ...account };
        },
      };
    },
    // Consent is granted for whatever was asked: the tests are about the gateway, not consent.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        return ctx.oidc.provider.Grant.find(grantId);
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
      grant.addOIDCClaims(['sub', 'email', 'email_verified', 'groups', 'name']);
      await grant.save();
      return grant;
    },
  });
  provider.proxy = false;
  provider.on('backchannel.error', (ctx, err) => process.stderr.write(`backchannel.error ${err.message} ${err.cause}\n`));
  provider.on('backchannel.success', () => process.stderr.write('backchannel.success\n'));
  provider.on('end_session.success', () => process.stderr.write('end_session.success\n'));
  server.on('request', provider.callback());
  process.stdout.write(`listening ${issuer}\n`);
});

process.on('SIGTERM', () => process.exit(0));
