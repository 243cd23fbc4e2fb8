"""Drives the lifecycle of clients/LIFECYCLE.md through the generated `invites_client` package.

    python lifecycle.py BASE_URL DEMO_JSON

DEMO_JSON is what `invites serve --demo --demo-out FILE` wrote. Prints one line per family,
`python <family>: ok (<n> calls: ...)`, and exits 1 at the first step that does not answer as
LIFECYCLE.md says, naming the family, the step, the status and the body (on stderr).

Every request goes through an operation module of the generated package (`sync_detailed`) with
its request models; answers are read through its response models, refusals through its
`ApiError` model. run.py generates the package and puts it on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from invites_client import AuthenticatedClient, Client
from invites_client.api.community import (
    invite_to_course,
    invite_to_group,
    join_group,
    list_course_invitations,
    list_group_invitations,
    remove_course_invitations,
    remove_group_invitations,
)
from invites_client.api.o_auth import create_service_account_token
from invites_client.api.ops_manager_project_invitations import (
    ops_manager_create_project_invitation,
    ops_manager_delete_project_invitation,
    ops_manager_get_project_invitation,
    ops_manager_list_project_invitations,
    ops_manager_update_project_invitation,
)
from invites_client.api.organizations import (
    create_org_invite,
    delete_org_invite,
    get_org_invite,
    list_org_invites,
    update_org_invite_by_id,
)
from invites_client.api.projects import (
    create_group_invite,
    delete_group_invite,
    get_group_invite,
    list_group_invites,
    update_group_invite_by_id,
)
from invites_client.models import (
    ApiError,
    CommunityInvitedUserPage,
    CommunityUsersRequest,
    GroupInvitation,
    GroupInvitationRequest,
    GroupInvitationUpdateRequest,
    OpsManagerProjectInvitation,
    OpsManagerProjectInvitationRequest,
    OpsManagerProjectInvitationUpdate,
    OrganizationInvitation,
    OrganizationInvitationRequest,
    OrganizationInvitationUpdateRequest,
    TokenRequest,
    TokenResponse,
)
from invites_client.types import Response

# What the document gives every Atlas v2 operation. The generator sets this Content-Type on
# Atlas request bodies itself but sends no Accept header: the clients add it (Gaps, README.md).
ATLAS_MEDIA_TYPE = "application/vnd.atlas.2023-01-01+json"
ATLAS_HEADERS = {"Accept": ATLAS_MEDIA_TYPE}
# Per request, so that no step can hang: the whole run is bounded by run.py too.
TIMEOUT = httpx.Timeout(30.0)
# The community lists are read in one page.
PAGE = 1000


class StepFailed(Exception):
    """A step did not answer as LIFECYCLE.md says."""

    def __init__(self, step: str, status: int | None, body: str, why: str) -> None:
        super().__init__(step)
        self.step, self.status, self.body, self.why = step, status, body, why


def body_text(response: Response[Any]) -> str:
    text = response.content.decode("utf-8", errors="replace")
    return text if len(text) <= 2000 else text[:2000] + "..."


class Family:
    """One family's run: counts its calls and says what was done."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.done: list[str] = []

    def call(
        self, step: str, operation: Callable[..., Response[Any]], status: int, **kwargs: Any
    ) -> Response[Any]:
        """`operation.sync_detailed(**kwargs)`, which must answer `status`."""
        self.calls += 1
        try:
            response = operation(**kwargs)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            # A transport error, or a body the generated model could not read.
            raise StepFailed(step, None, "", f"{type(e).__name__}: {e}") from e
        if response.status_code != status:
            raise StepFailed(step, int(response.status_code), body_text(response), f"expected {status}")
        return response

    def parsed(self, step: str, response: Response[Any], model: type) -> Any:
        """The answer as the generated `model` (what the operation module parsed it into)."""
        if not isinstance(response.parsed, model):
            raise StepFailed(
                step,
                int(response.status_code),
                body_text(response),
                f"not read as {model.__name__} (got {type(response.parsed).__name__})",
            )
        return response.parsed

    def api_error(self, step: str, response: Response[Any], error_code: str | None = None) -> ApiError:
        """The refusal's body through the generated ApiError model; `error` must be the status."""
        if isinstance(response.parsed, ApiError):
            error = response.parsed
        else:
            # A status the generator typed without a body model (none today), read the same way.
            try:
                error = ApiError.from_dict(json.loads(response.content))
            except (ValueError, KeyError, TypeError) as e:
                raise StepFailed(
                    step, int(response.status_code), body_text(response), f"not an ApiError: {e}"
                ) from e
        if error.error != int(response.status_code) or not error.error_code:
            self.fail(step, response, f"ApiError error={error.error} errorCode={error.error_code!r}")
        if error_code is not None and error.error_code != error_code:
            self.fail(step, response, f"errorCode {error.error_code!r}, expected {error_code!r}")
        return error

    def check(self, step: str, ok: bool, response: Response[Any], why: str) -> None:
        if not ok:
            self.fail(step, response, why)

    @staticmethod
    def fail(step: str, response: Response[Any], why: str) -> None:
        raise StepFailed(step, int(response.status_code), body_text(response), why)

    def summary(self) -> str:
        return f"python {self.name}: ok ({self.calls} calls: {', '.join(self.done)})"


def unique_username(family: str) -> str:
    """A username no earlier run used: the time in milliseconds and the process id."""
    return f"python-{family}-{time.time_ns() // 1_000_000}-{os.getpid()}@clients.example.com"


def api_key(demo: dict[str, Any], role: str) -> tuple[str, str]:
    for key in demo["api_keys"]:
        if key["role"] == role:
            return key["public_key"], key["private_key"]
    raise SystemExit(f"the demo file has no {role!r} API key")


def community_user(demo: dict[str, Any], role: str) -> dict[str, Any]:
    for user in demo["community_users"]:
        if user["role"] == role:
            return user
    raise SystemExit(f"the demo file has no community {role!r} user")


# Each client gets its own copy of the headers: the generated AuthenticatedClient writes its
# Authorization header into the dict it was given, which would otherwise leak the token into
# every client built from the same dict (the "without credentials" step would then be signed in).


def digest_client(base: str, key: tuple[str, str], headers: dict[str, str]) -> Client:
    """HTTP Digest through httpx, handed to the generated Client through its `httpx_args`.

    The generator knows only token authentication (AuthenticatedClient); Digest is not
    something it can express, so these clients are plain `Client`s whose httpx client answers
    the server's Digest challenge (Gaps, README.md)."""
    return Client(
        base_url=base,
        headers=dict(headers),
        timeout=TIMEOUT,
        httpx_args={"auth": httpx.DigestAuth(*key)},
    )


def bearer_client(base: str, token: str, headers: dict[str, str] | None = None) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=base, token=token, headers=dict(headers or {}), timeout=TIMEOUT)


def anonymous_client(base: str, headers: dict[str, str] | None = None) -> Client:
    return Client(base_url=base, headers=dict(headers or {}), timeout=TIMEOUT)


# --- atlas-org: service account token, then Bearer ---------------------------------------------


def atlas_org(base: str, demo: dict[str, Any]) -> Family:
    f = Family("atlas-org")
    org = demo["org_id"]
    sa = demo["service_account"]

    # The token endpoint: HTTP Basic with the client id and secret (httpx's BasicAuth through
    # httpx_args), the form body through the generated TokenRequest.
    token_client = Client(
        base_url=base,
        timeout=TIMEOUT,
        httpx_args={"auth": httpx.BasicAuth(sa["client_id"], sa["client_secret"])},
    )
    step = "createServiceAccountToken"
    r = f.call(
        step,
        create_service_account_token.sync_detailed,
        200,
        client=token_client,
        body=TokenRequest(grant_type="client_credentials"),
    )
    token: TokenResponse = f.parsed(step, r, TokenResponse)
    f.check(step, token.token_type == "Bearer" and bool(token.access_token), r, "not a Bearer token")
    f.done.append("token")

    client = bearer_client(base, token.access_token, ATLAS_HEADERS)
    username = unique_username("org")

    step = "createOrgInvite"
    r = f.call(
        step,
        create_org_invite.sync_detailed,
        200,
        org_id=org,
        client=client,
        body=OrganizationInvitationRequest(username=username, roles=["ORG_MEMBER"]),
    )
    created: OrganizationInvitation = f.parsed(step, r, OrganizationInvitation)
    f.check(step, isinstance(created.id, str) and len(created.id) == 24, r, "no invitation id")
    f.check(step, created.username == username, r, f"username is not {username}")
    invitation = created.id
    f.done.append("create")

    step = "listOrgInvites"
    r = f.call(step, list_org_invites.sync_detailed, 200, org_id=org, client=client)
    listed = r.parsed
    f.check(
        step,
        isinstance(listed, list) and all(isinstance(i, OrganizationInvitation) for i in listed),
        r,
        "not read as a list of OrganizationInvitation",
    )
    f.check(step, invitation in [i.id for i in listed], r, f"{invitation} is not listed")
    f.done.append("list")

    step = "getOrgInvite"
    r = f.call(step, get_org_invite.sync_detailed, 200, org_id=org, invitation_id=invitation, client=client)
    got: OrganizationInvitation = f.parsed(step, r, OrganizationInvitation)
    f.check(step, got.username == username, r, f"username is not {username}")
    f.done.append("get")

    step = "updateOrgInviteById"
    r = f.call(
        step,
        update_org_invite_by_id.sync_detailed,
        200,
        org_id=org,
        invitation_id=invitation,
        client=client,
        body=OrganizationInvitationUpdateRequest(roles=["ORG_READ_ONLY"]),
    )
    updated: OrganizationInvitation = f.parsed(step, r, OrganizationInvitation)
    f.check(step, updated.roles == ["ORG_READ_ONLY"], r, "roles are not [ORG_READ_ONLY]")
    f.done.append("update roles")

    step = "deleteOrgInvite"
    f.call(step, delete_org_invite.sync_detailed, 204, org_id=org, invitation_id=invitation, client=client)
    f.done.append("delete")

    step = "deleteOrgInvite again"
    r = f.call(
        step, delete_org_invite.sync_detailed, 404, org_id=org, invitation_id=invitation, client=client
    )
    e = f.api_error(step, r)
    f.done.append(f"again 404 {e.error_code}")

    step = "listOrgInvites without credentials"
    r = f.call(
        step, list_org_invites.sync_detailed, 401, org_id=org, client=anonymous_client(base, ATLAS_HEADERS)
    )
    e = f.api_error(step, r, "NOT_AUTHENTICATED")
    f.done.append(f"no credentials 401 {e.error_code}")
    return f


# --- atlas-project: Digest, owner key ----------------------------------------------------------


def atlas_project(base: str, demo: dict[str, Any]) -> Family:
    f = Family("atlas-project")
    project = demo["project_id"]
    client = digest_client(base, api_key(demo, "owner"), ATLAS_HEADERS)
    username = unique_username("project")

    step = "createGroupInvite"
    r = f.call(
        step,
        create_group_invite.sync_detailed,
        200,
        group_id=project,
        client=client,
        body=GroupInvitationRequest(username=username, roles=["GROUP_READ_ONLY"]),
    )
    created: GroupInvitation = f.parsed(step, r, GroupInvitation)
    f.check(step, isinstance(created.id, str) and len(created.id) == 24, r, "no invitation id")
    invitation = created.id
    f.done.append("create")

    step = "listGroupInvites"
    r = f.call(step, list_group_invites.sync_detailed, 200, group_id=project, client=client)
    listed = r.parsed
    f.check(
        step,
        isinstance(listed, list) and all(isinstance(i, GroupInvitation) for i in listed),
        r,
        "not read as a list of GroupInvitation",
    )
    f.check(step, invitation in [i.id for i in listed], r, f"{invitation} is not listed")
    f.done.append("list")

    step = "getGroupInvite"
    r = f.call(
        step,
        get_group_invite.sync_detailed,
        200,
        group_id=project,
        invitation_id=invitation,
        client=client,
    )
    got: GroupInvitation = f.parsed(step, r, GroupInvitation)
    f.check(step, got.username == username, r, f"username is not {username}")
    f.done.append("get")

    step = "updateGroupInviteById"
    r = f.call(
        step,
        update_group_invite_by_id.sync_detailed,
        200,
        group_id=project,
        invitation_id=invitation,
        client=client,
        body=GroupInvitationUpdateRequest(roles=["GROUP_DATA_ACCESS_READ_ONLY"]),
    )
    updated: GroupInvitation = f.parsed(step, r, GroupInvitation)
    f.check(
        step,
        updated.roles == ["GROUP_DATA_ACCESS_READ_ONLY"],
        r,
        "roles are not [GROUP_DATA_ACCESS_READ_ONLY]",
    )
    f.done.append("update roles")

    step = "deleteGroupInvite"
    f.call(
        step,
        delete_group_invite.sync_detailed,
        204,
        group_id=project,
        invitation_id=invitation,
        client=client,
    )
    f.done.append("delete")

    step = "deleteGroupInvite again"
    r = f.call(
        step,
        delete_group_invite.sync_detailed,
        404,
        group_id=project,
        invitation_id=invitation,
        client=client,
    )
    e = f.api_error(step, r)
    f.done.append(f"again 404 {e.error_code}")

    step = "createGroupInvite with the member key"
    r = f.call(
        step,
        create_group_invite.sync_detailed,
        403,
        group_id=project,
        client=digest_client(base, api_key(demo, "member"), ATLAS_HEADERS),
        body=GroupInvitationRequest(username=unique_username("refused"), roles=["GROUP_READ_ONLY"]),
    )
    e = f.api_error(step, r)
    f.done.append(f"member key 403 {e.error_code}")
    return f


# --- opsmanager: Digest, owner key -------------------------------------------------------------


def opsmanager(base: str, demo: dict[str, Any]) -> Family:
    f = Family("opsmanager")
    project = demo["project_id"]
    client = digest_client(base, api_key(demo, "owner"), {})
    username = unique_username("opsmanager")

    step = "opsManagerCreateProjectInvitation"
    r = f.call(
        step,
        ops_manager_create_project_invitation.sync_detailed,
        200,
        group_id=project,
        client=client,
        body=OpsManagerProjectInvitationRequest(username=username, roles=["GROUP_DATA_ACCESS_READ_ONLY"]),
    )
    created: OpsManagerProjectInvitation = f.parsed(step, r, OpsManagerProjectInvitation)
    f.check(step, created.username == username and len(created.id) == 24, r, "not the invitation made")
    invitation = created.id
    f.done.append("create")

    step = "opsManagerListProjectInvitations"
    r = f.call(step, ops_manager_list_project_invitations.sync_detailed, 200, group_id=project, client=client)
    listed = r.parsed
    f.check(
        step,
        isinstance(listed, list) and all(isinstance(i, OpsManagerProjectInvitation) for i in listed),
        r,
        "not read as a list of OpsManagerProjectInvitation",
    )
    f.check(step, invitation in [i.id for i in listed], r, f"{invitation} is not listed")
    f.done.append("list")

    step = "opsManagerGetProjectInvitation"
    r = f.call(
        step,
        ops_manager_get_project_invitation.sync_detailed,
        200,
        group_id=project,
        invitation_id=invitation,
        client=client,
    )
    got: OpsManagerProjectInvitation = f.parsed(step, r, OpsManagerProjectInvitation)
    f.check(step, got.username == username, r, f"username is not {username}")
    f.done.append("get")

    step = "opsManagerUpdateProjectInvitation"
    r = f.call(
        step,
        ops_manager_update_project_invitation.sync_detailed,
        200,
        group_id=project,
        invitation_id=invitation,
        client=client,
        body=OpsManagerProjectInvitationUpdate(roles=["GROUP_READ_ONLY"]),
    )
    updated: OpsManagerProjectInvitation = f.parsed(step, r, OpsManagerProjectInvitation)
    f.check(step, updated.roles == ["GROUP_READ_ONLY"], r, "roles are not [GROUP_READ_ONLY]")
    f.done.append("update roles")

    step = "opsManagerDeleteProjectInvitation"
    f.call(
        step,
        ops_manager_delete_project_invitation.sync_detailed,
        204,
        group_id=project,
        invitation_id=invitation,
        client=client,
    )
    f.done.append("delete")

    step = "opsManagerDeleteProjectInvitation again"
    r = f.call(
        step,
        ops_manager_delete_project_invitation.sync_detailed,
        404,
        group_id=project,
        invitation_id=invitation,
        client=client,
    )
    e = f.api_error(step, r)
    f.done.append(f"again 404 {e.error_code}")

    step = "opsManagerListProjectInvitations without credentials"
    r = f.call(
        step,
        ops_manager_list_project_invitations.sync_detailed,
        401,
        group_id=project,
        client=anonymous_client(base),
    )
    e = f.api_error(step, r)
    f.done.append(f"no credentials 401 {e.error_code}")
    return f


# --- community: Bearer; the manager invites, the creator joins --------------------------------


def community(base: str, demo: dict[str, Any]) -> Family:
    f = Family("community")
    group = demo["community_group_id"]
    course = demo["course_id"]
    manager = bearer_client(base, community_user(demo, "manager")["token"])
    creator_user = community_user(demo, "creator")
    creator_id = creator_user["user_id"]
    creator = bearer_client(base, creator_user["token"])
    guests = list(demo["invited_user_ids"])
    if not guests:
        raise SystemExit("the demo file lists no invited_user_ids")

    def pending(step: str, operation: Any, target: int) -> tuple[Response[Any], list[int]]:
        r = f.call(step, operation.sync_detailed, 200, id=target, client=manager, limit=PAGE)
        page: CommunityInvitedUserPage = f.parsed(step, r, CommunityInvitedUserPage)
        return r, [u.id for u in page.results]

    # Group.
    step = "inviteToGroup"
    f.call(
        step,
        invite_to_group.sync_detailed,
        204,
        id=group,
        client=manager,
        body=CommunityUsersRequest(users=[creator_id]),
    )
    f.done.append("invite creator to group")

    step = "listGroupInvitations"
    r, ids = pending(step, list_group_invitations, group)
    # LIFECYCLE.md: a fresh demo server, where the creator has never been invited to the group.
    f.check(step, creator_id in ids, r, f"user {creator_id} (the creator) is not listed")
    f.done.append("list")

    step = "joinGroup (the creator)"
    f.call(step, join_group.sync_detailed, 204, id=group, client=creator)
    f.done.append("creator joins")

    step = "listGroupInvitations after joinGroup"
    r, ids = pending(step, list_group_invitations, group)
    f.check(step, creator_id not in ids, r, f"user {creator_id} (the creator) is still listed")
    f.done.append("list")

    # The first of the demo's invited guests, invited again in case it was removed before.
    guest = guests[0]
    step = "inviteToGroup (a guest)"
    f.call(
        step,
        invite_to_group.sync_detailed,
        204,
        id=group,
        client=manager,
        body=CommunityUsersRequest(users=[guest]),
    )
    f.done.append("invite a guest")

    step = "removeGroupInvitations"
    f.call(
        step,
        remove_group_invitations.sync_detailed,
        204,
        id=group,
        client=manager,
        body=CommunityUsersRequest(users=[guest]),
    )
    f.done.append("remove a guest")

    # A bulk removal is all or nothing: a user with nothing pending makes it a 400 naming them.
    step = "removeGroupInvitations again"
    r = f.call(
        step,
        remove_group_invitations.sync_detailed,
        400,
        id=group,
        client=manager,
        body=CommunityUsersRequest(users=[guest]),
    )
    e = f.api_error(step, r, "INVALID_USER_IDS")
    f.check(step, [p.value for p in e.parameters] == [str(guest)], r, f"user {guest} is not named")
    f.done.append(f"again 400 {e.error_code}")

    # Course: the first demo guest, invited (again, if still pending: users already invited stay
    # invited), listed, removed, removed again.
    guest = guests[0]
    step = "inviteToCourse"
    f.call(
        step,
        invite_to_course.sync_detailed,
        204,
        id=course,
        client=manager,
        body=CommunityUsersRequest(users=[guest]),
    )
    f.done.append("invite to course")

    step = "listCourseInvitations"
    r, ids = pending(step, list_course_invitations, course)
    f.check(step, guest in ids, r, f"user {guest} is not listed")
    f.done.append("list")

    step = "removeCourseInvitations"
    f.call(
        step,
        remove_course_invitations.sync_detailed,
        204,
        id=course,
        client=manager,
        body=CommunityUsersRequest(users=[guest]),
    )
    f.done.append("remove")

    step = "removeCourseInvitations again"
    r = f.call(
        step,
        remove_course_invitations.sync_detailed,
        400,
        id=course,
        client=manager,
        body=CommunityUsersRequest(users=[guest]),
    )
    e = f.api_error(step, r, "INVALID_USER_IDS")
    f.done.append(f"again 400 {e.error_code}")

    step = "inviteToGroup with the member token"
    r = f.call(
        step,
        invite_to_group.sync_detailed,
        403,
        id=group,
        client=bearer_client(base, community_user(demo, "member")["token"]),
        body=CommunityUsersRequest(users=[creator_id]),
    )
    e = f.api_error(step, r)
    f.done.append(f"member 403 {e.error_code}")
    return f


DEMO_KEYS = (
    "org_id",
    "project_id",
    "api_keys",
    "service_account",
    "community_group_id",
    "course_id",
    "community_users",
    "invited_user_ids",
)

FAMILIES = [
    ("atlas-org", atlas_org),
    ("atlas-project", atlas_project),
    ("opsmanager", opsmanager),
    ("community", community),
]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: lifecycle.py BASE_URL DEMO_JSON", file=sys.stderr)
        return 2
    base = argv[1].rstrip("/")
    with open(argv[2], encoding="utf-8") as fh:
        demo = json.load(fh)
    missing = [k for k in DEMO_KEYS if not isinstance(demo, dict) or k not in demo]
    if missing:
        print(f"python: {argv[2]} is not a --demo-out file: no {', '.join(missing)}", file=sys.stderr)
        return 2
    for name, run in FAMILIES:
        try:
            family = run(base, demo)
        except StepFailed as e:
            status = "no answer" if e.status is None else f"status {e.status}"
            print(
                f"python {name}: FAILED at {e.step}: {e.why}; {status}; body: {e.body or '(empty)'}",
                file=sys.stderr,
            )
            return 1
        print(family.summary(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
