// PostGraphile 4 over Brandloop's tables, under the same row-level security: every request runs
// as brandloop_app with app.tenant_id taken from the X-Tenant-Id header (set by the benchmark).
const http = require("http");
const { postgraphile } = require("postgraphile");
const ConnectionFilterPlugin = require("postgraphile-plugin-connection-filter");

const middleware = postgraphile(process.env.DATABASE_URL, "public", {
  appendPlugins: [ConnectionFilterPlugin],
  pgSettings: (req) => ({ role: "brandloop_app", "app.tenant_id": req.headers["x-tenant-id"] }),
  disableQueryLog: true,
  dynamicJson: true,
  setofFunctionsContainNulls: false,
  ignoreRBAC: false,
  legacyRelations: "omit",
  graphiql: false,
  retryOnInitFail: false,
});

http.createServer(middleware).listen(Number(process.env.PORT), "127.0.0.1", () => {
  console.log("ready");
});
