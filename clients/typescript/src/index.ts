// Tiergate's TypeScript client: openapi-fetch typed with the paths generated from Tiergate's own OpenAPI
// document (`npm run build` regenerates src/schema.d.ts from it), so every path, body and answer is typed.
import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./schema.js";

export type { paths } from "./schema.js";
export type TiergateClient = Client<paths>;

export interface Options {
  baseUrl: string;
  apiKey: string;
  fetch?: typeof fetch;
}

/** A client that sends the API key on every call and an Idempotency-Key on every POST. */
export function createTiergateClient(options: Options): TiergateClient {
  const client = createClient<paths>({ baseUrl: options.baseUrl, fetch: options.fetch });
  client.use({
    onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${options.apiKey}`);
      if (request.method === "POST" && !request.headers.has("Idempotency-Key")) {
        request.headers.set("Idempotency-Key", crypto.randomUUID());
      }
      return request;
    },
  });
  return client;
}
