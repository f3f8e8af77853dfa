// Runs against a live Tiergate (TIERGATE_URL, TIERGATE_KEY): creates a customer and a subscription,
// checks a permission and reads the entitlements, through the typed client. Exits non-zero on any surprise.
import assert from "node:assert/strict";
import { createTiergateClient } from "../dist/index.js";

const client = createTiergateClient({ baseUrl: process.env.TIERGATE_URL, apiKey: process.env.TIERGATE_KEY });

const created = await client.POST("/v1/customers", { body: { name: "From Node", currency: "EUR" } });
assert.equal(created.response.status, 201, JSON.stringify(created.error));
const customer = created.data.id;

const sub = await client.POST("/v1/subscriptions", { body: { customer, price: "pro_monthly", trial_days: 0 } });
assert.equal(sub.response.status, 201, JSON.stringify(sub.error));
assert.equal(sub.data.status, "active");

// The new subscription reaches the decision index within the propagation bound (about a second).
let check;
for (let tries = 0; tries < 100; tries++) {
  check = await client.POST("/v1/check", { body: { customer, feature: "reporting_advanced" } });
  assert.equal(check.response.status, 200, JSON.stringify(check.error));
  if (check.data.reason !== "unknown_tenant") break;
  await new Promise((resolve) => setTimeout(resolve, 50));
}
assert.equal(check.data.allowed, true);
assert.equal(check.data.plan, "pro");

const missing = await client.GET("/v1/customers/{customer_id}", { params: { path: { customer_id: "cus_none" } } });
assert.equal(missing.response.status, 404);
assert.equal(missing.error.code, "customer_not_found");

const snapshot = await client.GET("/v1/entitlements/{customer}", { params: { path: { customer } } });
assert.equal(snapshot.data.plan, "pro");
console.log(JSON.stringify({ customer, subscription: sub.data.id, allowed: check.data.allowed }));
