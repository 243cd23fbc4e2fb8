// Drives the invitation lifecycle of clients/LIFECYCLE.md against a running demo server, through
// the client generated from openapi/invites.json (openapi-typescript types + openapi-fetch).
//
// Usage: node lifecycle.js BASE_URL DEMO_JSON
//
// Prints one line per family, `typescript <family>: ok (<n> calls: ...)`, and exits 1 at the
// first step that does not answer as LIFECYCLE.md says, naming the family, the step, the status
// and the body.

import { readFileSync } from "node:fs";
import createClient, { type Client, type Middleware } from "openapi-fetch";
// The generated schema (openapi-typescript output, in the out dir; mapped by tsconfig `paths`).
// Type-only: erased from the JavaScript, so nothing of it is needed at run time.
import type { components, paths } from "invites-schema";
import { digestAuth } from "./digest.js";

type ApiError = components["schemas"]["ApiError"];
type InvitesClient = Client<paths>;

/** The media type of the Atlas family (requests and successful answers). */
const ATLAS_MEDIA_TYPE = "application/vnd.atlas.2023-01-01+json";
/** The realm of the Atlas and Ops Manager Digest challenges. */
const DIGEST_REALM = "MMS Public API";
/** No single request may take longer than this. */
const REQUEST_TIMEOUT_MS = 10_000;
/** The whole run may not take longer than this. */
const RUN_TIMEOUT_MS = 45_000;

// ---------------------------------------------------------------------------------------------
// The demo server's `--demo-out` file (not part of the OpenAPI document, so written by hand).

interface DemoApiKey {
  role: string;
  public_key: string;
  private_key: string;
}
interface DemoUser {
  role: string;
  user_id: number;
  username: string;
  token: string;
}
interface Demo {
  org_id: string;
  project_id: string;
  api_keys: DemoApiKey[];
  service_account: { client_id: string; client_secret: string };
  community_group_id: number;
  course_id: number;
  community_users: DemoUser[];
  invited_user_ids: number[];
}

function readDemo(path: string): Demo {
  const demo = JSON.parse(readFileSync(path, "utf8")) as Demo;
  for (const field of [
    "org_id",
    "project_id",
    "api_keys",
    "service_account",
    "community_users",
    "invited_user_ids",
  ] as const) {
    if (demo[field] === undefined) throw new Error(`${path}: no ${field}`);
  }
  return demo;
}

function apiKey(demo: Demo, role: string): DemoApiKey {
  const key = demo.api_keys.find((k) => k.role === role);
  if (key === undefined) throw new Error(`the demo file has no ${role} API key`);
  return key;
}

function communityUser(demo: Demo, role: string): DemoUser {
  const user = demo.community_users.find((u) => u.role === role);
  if (user === undefined) throw new Error(`the demo file has no community ${role}`);
  return user;
}

// ---------------------------------------------------------------------------------------------
// Steps: each call is counted, and any answer other than the expected one ends the run.

class StepFailure extends Error {
  constructor(
    readonly family: string,
    readonly step: string,
    readonly status: number | undefined,
    readonly body: string,
    readonly why: string,
  ) {
    super(`${family}: step ${step}: ${why}`);
  }
}

/** What openapi-fetch returns for every call (the fields this driver reads). */
interface Answer<D, E> {
  data?: D;
  error?: E;
  response: Response;
}

function bodyOf(r: Answer<unknown, unknown>): string {
  const body = r.data !== undefined ? r.data : r.error;
  if (body === undefined) return "(empty)";
  return typeof body === "string" ? body : JSON.stringify(body);
}

class Family {
  private calls = 0;
  private readonly steps: string[] = [];
  private digestChallenges = 0;
  private digestMaxNc = 0;
  private readonly digestAlgorithms = new Set<string>();

  constructor(readonly name: string) {}

  fail(step: string, r: Answer<unknown, unknown> | undefined, why: string): never {
    throw new StepFailure(this.name, step, r?.response.status, r === undefined ? "" : bodyOf(r), why);
  }

  /** Sends one request (counted); a network failure or a timeout fails the step. */
  async call<R>(step: string, send: () => Promise<R>): Promise<R> {
    this.calls += 1;
    try {
      return await send();
    } catch (e) {
      const cause = e instanceof Error && e.cause instanceof Error ? ` (${e.cause.message})` : "";
      throw new StepFailure(
        this.name,
        step,
        undefined,
        "",
        `request failed: ${e instanceof Error ? e.message : String(e)}${cause}`,
      );
    }
  }

  /** A successful answer with `status` and a body: the body, typed by the generated schema. */
  ok<D, E>(step: string, r: Answer<D, E>, status: number, note = step): D {
    if (r.response.status !== status || r.data === undefined) {
      this.fail(step, r, `expected ${status} with a body`);
    }
    this.steps.push(note);
    return r.data;
  }

  /** A successful answer without a body (`204`). */
  noContent<D, E>(step: string, r: Answer<D, E>, note = `${step} 204`): void {
    if (r.response.status !== 204) this.fail(step, r, "expected 204");
    this.steps.push(note);
  }

  /**
   * A refused request: the status must be `status` and the body an `ApiError`. The constraint
   * `E extends ApiError` makes the compiler check that the generated error type of the operation
   * is the document's `ApiError`; the checks below make sure the server sent one.
   */
  refused<D, E extends ApiError>(
    step: string,
    r: Answer<D, E>,
    status: number,
    note: string,
    errorCode?: string,
  ): ApiError {
    const error: ApiError | undefined = r.error;
    if (r.response.status !== status || error === undefined || typeof error !== "object") {
      this.fail(step, r, `expected ${status} with an ApiError body`);
    }
    if (
      error.error !== status ||
      typeof error.errorCode !== "string" ||
      error.errorCode === "" ||
      !Array.isArray(error.parameters)
    ) {
      this.fail(step, r, `the ${status} body is not an ApiError (error, errorCode, parameters)`);
    }
    if (errorCode !== undefined && error.errorCode !== errorCode) {
      this.fail(step, r, `expected errorCode ${errorCode}, got ${error.errorCode}`);
    }
    this.steps.push(`${note} ${status} ${error.errorCode}`);
    return error;
  }

  check(step: string, r: Answer<unknown, unknown>, condition: boolean, why: string): void {
    if (!condition) this.fail(step, r, why);
  }

  /** A Digest middleware for `key` whose use is reported in the summary. */
  digest(key: DemoApiKey): Middleware {
    return digestAuth({
      username: key.public_key,
      password: key.private_key,
      realm: DIGEST_REALM,
      onAuthorized: ({ nc, retried, algorithm }) => {
        if (retried) this.digestChallenges += 1;
        this.digestMaxNc = Math.max(this.digestMaxNc, nc);
        this.digestAlgorithms.add(algorithm);
      },
    });
  }

  summary(): string {
    const digest =
      this.digestChallenges === 0
        ? ""
        : `; Digest ${[...this.digestAlgorithms].join("/")}: challenges answered ${this.digestChallenges}, highest nc ${this.digestMaxNc}`;
    return `typescript ${this.name}: ok (${this.calls} calls: ${this.steps.join(", ")}${digest})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Clients: one generated client per identity; authentication and media types are middleware.

function client(baseUrl: string, ...middleware: Middleware[]): InvitesClient {
  const c = createClient<paths>({
    baseUrl,
    // Every request, the Digest retry included, is bounded.
    fetch: (request: Request) => fetch(request, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }),
  });
  c.use(...middleware);
  return c;
}

function bearer(token: string): Middleware {
  return {
    onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${token}`);
      return request;
    },
  };
}

/**
 * The Atlas media type: openapi-fetch sends `Content-Type: application/json` on every body and no
 * `Accept`, whatever media type the document gives the operation, so the Atlas clients set both.
 */
const atlasMediaType: Middleware = {
  onRequest({ request }) {
    request.headers.set("Accept", ATLAS_MEDIA_TYPE);
    if (request.body !== null) request.headers.set("Content-Type", ATLAS_MEDIA_TYPE);
    return request;
  },
};

/** The `users` body of the community family, typed by the generated schema. */
function users(...ids: number[]): components["schemas"]["CommunityUsersRequest"] {
  return { users: ids };
}

function uniqueUsername(family: string): string {
  const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  return `ts-${family}-${stamp}@clients.test`;
}

function sameRoles(actual: string[] | undefined, expected: string[]): boolean {
  return actual !== undefined && actual.length === expected.length && expected.every((r) => actual.includes(r));
}

// ---------------------------------------------------------------------------------------------
// atlas-org: service account (OAuth client credentials), then Bearer.

async function atlasOrg(baseUrl: string, demo: Demo): Promise<string> {
  const f: Family = new Family("atlas-org");
  const orgId = demo.org_id;
  const { client_id, client_secret } = demo.service_account;

  // The token request is form-encoded with HTTP Basic credentials: openapi-fetch serialises
  // bodies as JSON, so this one call gets its own body serializer and headers.
  const tokenAnswer = await f.call("createServiceAccountToken", () =>
    client(baseUrl).POST("/api/oauth/token", {
      body: { grant_type: "client_credentials" },
      bodySerializer: (body) => new URLSearchParams({ grant_type: body.grant_type }).toString(),
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        Authorization: `Basic ${Buffer.from(`${client_id}:${client_secret}`).toString("base64")}`,
      },
    }),
  );
  const token = f.ok("createServiceAccountToken", tokenAnswer, 200, "token");
  f.check(
    "createServiceAccountToken",
    tokenAnswer,
    token.token_type === "Bearer" && token.access_token !== "",
    "no Bearer token",
  );

  const api = client(baseUrl, atlasMediaType, bearer(token.access_token));
  const username = uniqueUsername("org");
  const org = { params: { path: { orgId } } };

  const created = await f.call("createOrgInvite", () =>
    api.POST("/api/atlas/v2/orgs/{orgId}/invites", { ...org, body: { username, roles: ["ORG_MEMBER"] } }),
  );
  const invitation = f.ok("createOrgInvite", created, 200, "create");
  const invitationId = invitation.id;
  if (invitationId === undefined || !/^[0-9a-f]{24}$/.test(invitationId))
    f.fail("createOrgInvite", created, "no invitation id");
  f.check("createOrgInvite", created, invitation.username === username, "another username");
  const one = { params: { path: { orgId, invitationId } } };

  const listed = await f.call("listOrgInvites", () => api.GET("/api/atlas/v2/orgs/{orgId}/invites", org));
  const list = f.ok("listOrgInvites", listed, 200, "list");
  f.check(
    "listOrgInvites",
    listed,
    list.some((i) => i.id === invitationId),
    `${invitationId} is not listed`,
  );

  const got = await f.call("getOrgInvite", () => api.GET("/api/atlas/v2/orgs/{orgId}/invites/{invitationId}", one));
  f.check("getOrgInvite", got, f.ok("getOrgInvite", got, 200, "get").username === username, "another username");

  const updated = await f.call("updateOrgInviteById", () =>
    api.PATCH("/api/atlas/v2/orgs/{orgId}/invites/{invitationId}", { ...one, body: { roles: ["ORG_READ_ONLY"] } }),
  );
  const roles = f.ok("updateOrgInviteById", updated, 200, "update").roles;
  f.check("updateOrgInviteById", updated, sameRoles(roles, ["ORG_READ_ONLY"]), "roles not updated");

  f.noContent(
    "deleteOrgInvite",
    await f.call("deleteOrgInvite", () => api.DELETE("/api/atlas/v2/orgs/{orgId}/invites/{invitationId}", one)),
    "delete 204",
  );
  f.refused(
    "deleteOrgInvite again",
    await f.call("deleteOrgInvite again", () => api.DELETE("/api/atlas/v2/orgs/{orgId}/invites/{invitationId}", one)),
    404,
    "delete again",
  );

  const anonymous = client(baseUrl, atlasMediaType);
  f.refused(
    "listOrgInvites without credentials",
    await f.call("listOrgInvites without credentials", () => anonymous.GET("/api/atlas/v2/orgs/{orgId}/invites", org)),
    401,
    "list without credentials",
    "NOT_AUTHENTICATED",
  );
  return f.summary();
}

// ---------------------------------------------------------------------------------------------
// atlas-project: Digest with the owner key; the member key is refused.

async function atlasProject(baseUrl: string, demo: Demo): Promise<string> {
  const f: Family = new Family("atlas-project");
  const groupId = demo.project_id;
  const owner = apiKey(demo, "owner");
  const member = apiKey(demo, "member");
  const api = client(baseUrl, atlasMediaType, f.digest(owner));
  const username = uniqueUsername("project");
  const group = { params: { path: { groupId } } };

  const created = await f.call("createGroupInvite", () =>
    api.POST("/api/atlas/v2/groups/{groupId}/invites", { ...group, body: { username, roles: ["GROUP_READ_ONLY"] } }),
  );
  const invitation = f.ok("createGroupInvite", created, 200, "create");
  const invitationId = invitation.id;
  if (invitationId === undefined || !/^[0-9a-f]{24}$/.test(invitationId))
    f.fail("createGroupInvite", created, "no invitation id");
  f.check("createGroupInvite", created, invitation.username === username, "another username");
  const one = { params: { path: { groupId, invitationId } } };

  const listed = await f.call("listGroupInvites", () => api.GET("/api/atlas/v2/groups/{groupId}/invites", group));
  f.check(
    "listGroupInvites",
    listed,
    f.ok("listGroupInvites", listed, 200, "list").some((i) => i.id === invitationId),
    `${invitationId} is not listed`,
  );

  const got = await f.call("getGroupInvite", () =>
    api.GET("/api/atlas/v2/groups/{groupId}/invites/{invitationId}", one),
  );
  f.check("getGroupInvite", got, f.ok("getGroupInvite", got, 200, "get").username === username, "another username");

  const updated = await f.call("updateGroupInviteById", () =>
    api.PATCH("/api/atlas/v2/groups/{groupId}/invites/{invitationId}", {
      ...one,
      body: { roles: ["GROUP_DATA_ACCESS_READ_ONLY"] },
    }),
  );
  const roles = f.ok("updateGroupInviteById", updated, 200, "update").roles;
  f.check("updateGroupInviteById", updated, sameRoles(roles, ["GROUP_DATA_ACCESS_READ_ONLY"]), "roles not updated");

  f.noContent(
    "deleteGroupInvite",
    await f.call("deleteGroupInvite", () => api.DELETE("/api/atlas/v2/groups/{groupId}/invites/{invitationId}", one)),
    "delete 204",
  );
  f.refused(
    "deleteGroupInvite again",
    await f.call("deleteGroupInvite again", () =>
      api.DELETE("/api/atlas/v2/groups/{groupId}/invites/{invitationId}", one),
    ),
    404,
    "delete again",
  );

  const memberApi = client(baseUrl, atlasMediaType, f.digest(member));
  f.refused(
    "createGroupInvite with the member key",
    await f.call("createGroupInvite with the member key", () =>
      memberApi.POST("/api/atlas/v2/groups/{groupId}/invites", {
        ...group,
        body: { username: uniqueUsername("refused"), roles: ["GROUP_READ_ONLY"] },
      }),
    ),
    403,
    "create with the member key",
  );
  return f.summary();
}

// ---------------------------------------------------------------------------------------------
// opsmanager: Digest with the owner key.

async function opsManager(baseUrl: string, demo: Demo): Promise<string> {
  const f: Family = new Family("opsmanager");
  const owner = apiKey(demo, "owner");
  const api = client(baseUrl, f.digest(owner));
  const username = uniqueUsername("opsmanager");
  const group = { params: { path: { "GROUP-ID": demo.project_id } } };

  const created = await f.call("opsManagerCreateProjectInvitation", () =>
    api.POST("/api/public/v1.0/groups/{GROUP-ID}/invites", {
      ...group,
      body: { username, roles: ["GROUP_DATA_ACCESS_READ_ONLY"] },
    }),
  );
  const invitation = f.ok("opsManagerCreateProjectInvitation", created, 200, "create");
  f.check(
    "opsManagerCreateProjectInvitation",
    created,
    invitation.username === username && /^[0-9a-f]{24}$/.test(invitation.id),
    "another username or no id",
  );
  const one = { params: { path: { "GROUP-ID": demo.project_id, "INVITATION-ID": invitation.id } } };

  const listed = await f.call("opsManagerListProjectInvitations", () =>
    api.GET("/api/public/v1.0/groups/{GROUP-ID}/invites", group),
  );
  f.check(
    "opsManagerListProjectInvitations",
    listed,
    f.ok("opsManagerListProjectInvitations", listed, 200, "list").some((i) => i.id === invitation.id),
    `${invitation.id} is not listed`,
  );

  const got = await f.call("opsManagerGetProjectInvitation", () =>
    api.GET("/api/public/v1.0/groups/{GROUP-ID}/invites/{INVITATION-ID}", one),
  );
  f.check(
    "opsManagerGetProjectInvitation",
    got,
    f.ok("opsManagerGetProjectInvitation", got, 200, "get").username === username,
    "another username",
  );

  const updated = await f.call("opsManagerUpdateProjectInvitation", () =>
    api.PATCH("/api/public/v1.0/groups/{GROUP-ID}/invites/{INVITATION-ID}", {
      ...one,
      body: { roles: ["GROUP_READ_ONLY"] },
    }),
  );
  const roles = f.ok("opsManagerUpdateProjectInvitation", updated, 200, "update").roles;
  f.check("opsManagerUpdateProjectInvitation", updated, sameRoles(roles, ["GROUP_READ_ONLY"]), "roles not updated");

  f.noContent(
    "opsManagerDeleteProjectInvitation",
    await f.call("opsManagerDeleteProjectInvitation", () =>
      api.DELETE("/api/public/v1.0/groups/{GROUP-ID}/invites/{INVITATION-ID}", one),
    ),
    "delete 204",
  );
  f.refused(
    "opsManagerDeleteProjectInvitation again",
    await f.call("opsManagerDeleteProjectInvitation again", () =>
      api.DELETE("/api/public/v1.0/groups/{GROUP-ID}/invites/{INVITATION-ID}", one),
    ),
    404,
    "delete again",
  );

  const anonymous = client(baseUrl);
  f.refused(
    "opsManagerListProjectInvitations without credentials",
    await f.call("opsManagerListProjectInvitations without credentials", () =>
      anonymous.GET("/api/public/v1.0/groups/{GROUP-ID}/invites", group),
    ),
    401,
    "list without credentials",
    "NOT_AUTHENTICATED",
  );
  return f.summary();
}

// ---------------------------------------------------------------------------------------------
// community: Bearer; the manager invites, the creator joins, the member is refused.

/**
 * The status of removing an invitation that is no longer pending: a bulk removal is all or
 * nothing, so a user with nothing pending makes it a 400 naming them (LIFECYCLE.md).
 */
const REMOVED_AGAIN_STATUS = 400;
const REMOVED_AGAIN_CODE = "INVALID_USER_IDS";

async function community(baseUrl: string, demo: Demo): Promise<string> {
  const f: Family = new Family("community");
  const manager = client(baseUrl, bearer(communityUser(demo, "manager").token));
  const creatorUser = communityUser(demo, "creator");
  const creator = client(baseUrl, bearer(creatorUser.token));
  const memberClient = client(baseUrl, bearer(communityUser(demo, "member").token));
  const group = { params: { path: { id: demo.community_group_id } } };
  const course = { params: { path: { id: demo.course_id } } };
  const listGroup = { params: { path: { id: demo.community_group_id }, query: { limit: 1000 } } };
  const listCourse = { params: { path: { id: demo.course_id }, query: { limit: 1000 } } };

  // Group: invite the creator, who accepts (joins).
  f.noContent(
    "inviteToGroup",
    await f.call("inviteToGroup", () =>
      manager.POST("/api/v2/group/{id}/invite/", { ...group, body: users(creatorUser.user_id) }),
    ),
    "invite 204",
  );
  const before = await f.call("listGroupInvitations", () => manager.GET("/api/v2/group/{id}/invite/", listGroup));
  const pendingBefore = f.ok("listGroupInvitations", before, 200, "list");
  // LIFECYCLE.md: a fresh demo server, where the creator has never been invited to the group.
  f.check(
    "listGroupInvitations",
    before,
    pendingBefore.results.some((u) => u.id === creatorUser.user_id),
    "the creator is not invited (not a fresh demo server?)",
  );
  f.noContent(
    "joinGroup",
    await f.call("joinGroup", () => creator.POST("/api/v2/group/{id}/join/", group)),
    "join 204",
  );
  const after = await f.call("listGroupInvitations after joining", () =>
    manager.GET("/api/v2/group/{id}/invite/", listGroup),
  );
  const pendingAfter = f.ok("listGroupInvitations after joining", after, 200, "list after join");
  f.check(
    "listGroupInvitations after joining",
    after,
    !pendingAfter.results.some((u) => u.id === creatorUser.user_id),
    "the creator is still invited",
  );

  // The first of the demo's invited users, invited again in case it was removed before.
  const removed = demo.invited_user_ids[0];
  if (removed === undefined) throw new Error("the demo file lists no invited users");
  f.noContent(
    "inviteToGroup (a guest)",
    await f.call("inviteToGroup (a guest)", () =>
      manager.POST("/api/v2/group/{id}/invite/", { ...group, body: users(removed) }),
    ),
    "invite a guest 204",
  );
  const removedId = removed;
  f.noContent(
    "removeGroupInvitations",
    await f.call("removeGroupInvitations", () =>
      manager.DELETE("/api/v2/group/{id}/invite/", { ...group, body: users(removedId) }),
    ),
    "remove 204",
  );
  const againAnswer = await f.call("removeGroupInvitations again", () =>
    manager.DELETE("/api/v2/group/{id}/invite/", { ...group, body: users(removedId) }),
  );
  const again = f.refused(
    "removeGroupInvitations again",
    againAnswer,
    REMOVED_AGAIN_STATUS,
    "remove again",
    REMOVED_AGAIN_CODE,
  );
  f.check(
    "removeGroupInvitations again",
    againAnswer,
    again.parameters.some((p) => p.value === String(removedId)),
    "the user is not named",
  );

  // Course: the same guest (pending there too on a fresh demo; invited again), list, remove.
  f.noContent(
    "inviteToCourse",
    await f.call("inviteToCourse", () =>
      manager.POST("/api/v2/course/{id}/invite/", { ...course, body: users(removedId) }),
    ),
    "course invite 204",
  );
  const courseList = await f.call("listCourseInvitations", () =>
    manager.GET("/api/v2/course/{id}/invite/", listCourse),
  );
  f.check(
    "listCourseInvitations",
    courseList,
    f.ok("listCourseInvitations", courseList, 200, "course list").results.some((u) => u.id === removedId),
    `user ${removedId} is not invited`,
  );
  f.noContent(
    "removeCourseInvitations",
    await f.call("removeCourseInvitations", () =>
      manager.DELETE("/api/v2/course/{id}/invite/", { ...course, body: users(removedId) }),
    ),
    "course remove 204",
  );
  f.refused(
    "removeCourseInvitations again",
    await f.call("removeCourseInvitations again", () =>
      manager.DELETE("/api/v2/course/{id}/invite/", { ...course, body: users(removedId) }),
    ),
    REMOVED_AGAIN_STATUS,
    "course remove again",
    REMOVED_AGAIN_CODE,
  );

  // Refused: the member is not a manager of the group.
  f.refused(
    "inviteToGroup with the member token",
    await f.call("inviteToGroup with the member token", () =>
      memberClient.POST("/api/v2/group/{id}/invite/", { ...group, body: users(creatorUser.user_id) }),
    ),
    403,
    "invite with the member token",
  );
  return f.summary();
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const [baseUrl, demoPath] = process.argv.slice(2);
  if (baseUrl === undefined || demoPath === undefined) {
    console.error("usage: node lifecycle.js BASE_URL DEMO_JSON");
    return 2;
  }
  let demo: Demo;
  try {
    demo = readDemo(demoPath);
  } catch (e) {
    console.error(`typescript: FAILED: reading ${demoPath}: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  const families: [string, (b: string, d: Demo) => Promise<string>][] = [
    ["atlas-org", atlasOrg],
    ["atlas-project", atlasProject],
    ["opsmanager", opsManager],
    ["community", community],
  ];
  for (const [name, run] of families) {
    try {
      console.log(await run(baseUrl.replace(/\/+$/, ""), demo));
    } catch (e) {
      if (e instanceof StepFailure) {
        const status = e.status === undefined ? "no answer" : `status ${e.status}`;
        console.error(
          `typescript ${e.family}: FAILED at step "${e.step}": ${status}: ${e.why}; body: ${e.body || "(empty)"}`,
        );
      } else {
        console.error(`typescript ${name}: FAILED: ${e instanceof Error ? e.message : String(e)}`);
      }
      return 1;
    }
  }
  return 0;
}

const watchdog = setTimeout(() => {
  console.error(`typescript: FAILED: the lifecycle did not finish within ${RUN_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, RUN_TIMEOUT_MS);
watchdog.unref();

process.exitCode = await main();
