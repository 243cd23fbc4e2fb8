//! What Prism users expect of the mock, and what they ask Prism for: the right error answers,
//! CORS, preferences, content negotiation, form bodies, every kind of credential, base paths,
//! several documents, reloading, and proxy mode.

use std::time::Duration;

use invites_mock::{Mock, MockConfig, ProxyConfig, Served};
use serde_json::{json, Value};

use crate::support::{mock_of, mock_of_value, root, serve};

#[tokio::test]
async fn requests_that_break_the_contract_get_the_documented_error() {
    let (base, _) = serve(mock_of(
        &root().join("openapi/invites.json"),
        MockConfig::default(),
    ))
    .await;
    let client = reqwest::Client::new();
    // No credentials: the documented 401.
    let r = client
        .delete(format!(
            "{base}/api/atlas/v2/orgs/32b6e34b3d91647abb20e7b8/invites/x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["x-mock-violation"]
        .to_str()
        .unwrap()
        .starts_with("credentials required"));
    // A path id off its pattern, where 400 is documented (and 422 is not): 400 naming the rule.
    let r = client
        .delete(format!("{base}/api/atlas/v2/orgs/NOPE/invites/x"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["x-mock-violation"]
        .to_str()
        .unwrap()
        .starts_with("path.orgId must match the pattern"));
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("path.orgId"));
    // A missing required body: the documented 400 of the community removal.
    let r = client
        .delete(format!("{base}/api/v2/group/1/invite/"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-mock-violation"], "body is required");
    // Unknown path 404, known path wrong method 405 with Allow, as problem+json.
    let r = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = client
        .put(format!("{base}/api/v2/group/1/invite/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "DELETE, GET, POST");
    // An undocumented Prefer code: 404 saying so (as Prism).
    let r = client
        .get(format!("{base}/health"))
        .header("Prefer", "code=418")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("418"), "{body}");
}

/// A document with one operation per kind of credential, and bodies of every kind.
fn kinds() -> Value {
    let ok = json!({"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}}}});
    let mut paths = serde_json::Map::new();
    for scheme in [
        "key_header",
        "key_query",
        "key_cookie",
        "basic",
        "bearer",
        "digest",
        "oauth",
        "oidc",
    ] {
        paths.insert(
            format!("/{scheme}"),
            json!({"get": {"operationId": scheme, "security": [{scheme: []}], "responses": ok}}),
        );
    }
    paths.insert(
        "/form".into(),
        json!({"post": {"operationId": "form", "requestBody": {"required": true, "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "required": ["amount"], "properties": {
                    "amount": {"type": "integer", "minimum": 1},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 5}}}},
                "encoding": {"tags": {"style": "form", "explode": false}}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 2}}}}}},
            "responses": ok}}),
    );
    paths.insert(
        "/negotiate".into(),
        json!({"get": {"operationId": "negotiate", "responses": {
            "200": {"description": "ok", "content": {
                "application/json": {"schema": {"type": "object"}, "example": {"a": 1}},
                "text/csv": {"schema": {"type": "string"}, "example": "a\n1\n"}}},
            "422": {"description": "bad", "content": {"application/json": {"schema": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}}}}}}}),
    );
    paths.insert(
        "/pets/{id}".into(),
        json!({"get": {"operationId": "pet", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"type": "object", "required": ["id", "name"], "properties": {"id": {"type": "integer", "minimum": 1}, "name": {"type": "string", "minLength": 3}}},
                "examples": {"rex": {"value": {"id": 7, "name": "Rex"}}, "bad": {"value": {"id": "x"}}}}}},
                "4XX": {"description": "client error", "content": {"application/json": {"schema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}}}}}}}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {"title": "kinds", "version": "1"},
        "servers": [{"url": "https://api.example.com/v2"}],
        "paths": paths,
        "components": {"securitySchemes": {
            "key_header": {"type": "apiKey", "in": "header", "name": "X-Key"},
            "key_query": {"type": "apiKey", "in": "query", "name": "key"},
            "key_cookie": {"type": "apiKey", "in": "cookie", "name": "session"},
            "basic": {"type": "http", "scheme": "basic"},
            "bearer": {"type": "http", "scheme": "bearer"},
            "digest": {"type": "http", "scheme": "digest"},
            "oauth": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "/t", "scopes": {}}}},
            "oidc": {"type": "openIdConnect", "openIdConnectUrl": "https://example.com/.well-known"}}}
    })
}

#[tokio::test]
async fn every_kind_of_credential_is_asked_for() {
    let (base, _) = serve(mock_of_value(kinds(), MockConfig::default())).await;
    let client = reqwest::Client::new();
    let cases: [(&str, &str, &str, Option<&str>); 8] = [
        ("key_header", "X-Key", "k", None),
        ("key_query", "", "", None),
        ("key_cookie", "Cookie", "session=abc", None),
        (
            "basic",
            "Authorization",
            "Basic dXNlcjpwYXNz",
            Some("Basic"),
        ),
        ("bearer", "Authorization", "Bearer t", Some("Bearer")),
        (
            "digest",
            "Authorization",
            "Digest username=\"u\", nonce=\"n\"",
            Some("Digest"),
        ),
        ("oauth", "Authorization", "Bearer t", Some("Bearer")),
        ("oidc", "Authorization", "Bearer t", Some("Bearer")),
    ];
    for (op, header, value, challenge) in cases {
        let url = format!("{base}/v2/{op}");
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{op} without credentials");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{op}"
        );
        match challenge {
            Some(c) => assert!(
                r.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with(c),
                "{op}"
            ),
            None => assert!(r.headers().get("www-authenticate").is_none(), "{op}"),
        }
        let with = if op == "key_query" {
            client.get(format!("{url}?key=k"))
        } else {
            client.get(&url).header(header, value)
        };
        let r = with.send().await.unwrap();
        assert_eq!(r.status(), 200, "{op} with credentials");
        // The wrong scheme is not the credential asked for.
        if op == "basic" {
            let r = client
                .get(&url)
                .header("Authorization", "Bearer t")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401);
        }
    }
}

#[tokio::test]
async fn form_bodies_are_validated_like_json_ones() {
    let (base, _) = serve(mock_of_value(kinds(), MockConfig::default())).await;
    let client = reqwest::Client::new();
    let post = |body: &'static str, ct: &'static str| {
        client
            .post(format!("{base}/v2/form"))
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    let form = "application/x-www-form-urlencoded";
    assert_eq!(
        post("amount=5&tags=a,b&metadata[k]=v", form)
            .await
            .unwrap()
            .status(),
        200
    );
    let r = post("amount=zero", form).await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.headers()["x-mock-violation"],
        "body.amount must be an integer"
    );
    let r = post("amount=5&metadata[k]=toolong", form).await.unwrap();
    assert_eq!(
        r.headers()["x-mock-violation"],
        "body.metadata.k must be at most 5 characters"
    );
    let r = post("tags=a", form).await.unwrap();
    assert_eq!(r.headers()["x-mock-violation"], "body.amount is required");
    let multipart = "--b0\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--b0--\r\n";
    let r = post(multipart, "multipart/form-data; boundary=b0")
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-mock-violation"],
        "body.name must be at least 2 characters"
    );
    let ok = "--b0\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nRex\r\n--b0--\r\n";
    assert_eq!(
        post(ok, "multipart/form-data; boundary=b0")
            .await
            .unwrap()
            .status(),
        200
    );
    // A media type the operation does not take: 415 (none documented: problem+json).
    let r = post("{}", "application/json").await.unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_error_ladder_accept_and_preferences() {
    let (base, _) = serve(mock_of_value(kinds(), MockConfig::default())).await;
    let client = reqwest::Client::new();
    // An invalid path parameter where only 4XX is documented: that response, sent as 422.
    let r = client
        .get(format!("{base}/v2/pets/abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("path.id"),
        "{body}"
    );
    // Named examples, only those valid against the schema.
    let pet = format!("{base}/v2/pets/7");
    let r = client
        .get(&pet)
        .header("Prefer", "example=rex")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"id": 7, "name": "Rex"})
    );
    let r = client
        .get(format!("{pet}?__example=bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "an example that breaks its schema is not served"
    );
    let r = client
        .get(format!("{pet}?__code=404"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "4XX answers any 4xx asked for");
    // Generated data: repeatable with a seed, valid, different from the example.
    let r = client
        .get(&pet)
        .header("Prefer", "dynamic=true")
        .send()
        .await
        .unwrap();
    let generated: Value = r.json().await.unwrap();
    assert!(generated["id"].as_i64().unwrap() >= 1);
    assert!(generated["name"].as_str().unwrap().len() >= 3);
    // Accept: negotiated among the documented media types; 406 when none fits.
    let neg = format!("{base}/v2/negotiate");
    let r = client
        .get(&neg)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv");
    assert_eq!(r.text().await.unwrap(), "a\n1\n");
    let r = client
        .get(&neg)
        .header("Accept", "application/json, text/*;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = client
        .get(&neg)
        .header("Accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    assert!(r.text().await.unwrap().contains("image/png"));
    // The base path of the first server, and (one document) the bare path too.
    assert_eq!(
        client
            .get(format!("{base}/negotiate"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn generated_data_is_repeatable_with_a_seed() {
    let config = MockConfig {
        dynamic: true,
        seed: Some(42),
        ..MockConfig::default()
    };
    let (base, _) = serve(mock_of_value(kinds(), config)).await;
    let client = reqwest::Client::new();
    let get = || async {
        client
            .get(format!("{base}/v2/pets/7"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let first = get().await;
    assert_eq!(first, get().await);
    assert_ne!(first, json!({"id": 7, "name": "Rex"}));
}

#[tokio::test]
async fn cors_is_on_by_default_and_can_be_turned_off() {
    let (base, _) = serve(mock_of_value(kinds(), MockConfig::default())).await;
    let client = reqwest::Client::new();
    let r = client
        .request(reqwest::Method::OPTIONS, format!("{base}/v2/pets/7"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "DELETE")
        .header("Access-Control-Request-Headers", "x-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers()["access-control-allow-methods"], "DELETE");
    assert_eq!(r.headers()["access-control-allow-headers"], "x-key");
    let r = client
        .get(format!("{base}/v2/pets/7"))
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );

    let off = MockConfig {
        cors: false,
        ..MockConfig::default()
    };
    let (base, _) = serve(mock_of_value(kinds(), off)).await;
    let r = client
        .request(reqwest::Method::OPTIONS, format!("{base}/v2/pets/7"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405, "no preflight: OPTIONS is not documented");
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn several_documents_answer_under_their_base_paths() {
    let second = json!({"openapi": "3.1.0", "info": {"title": "b", "version": "1"},
        "servers": [{"url": "http://localhost/other"}],
        "paths": {"/pets/{id}": {"get": {"operationId": "otherPet", "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": ["string", "null"]}}}}}}}}});
    let mock = Mock::new(
        vec![
            Served::from_contract(
                "a",
                invites_contract::Contract::from_json(&kinds().to_string()).unwrap(),
            ),
            Served::from_contract(
                "b",
                invites_contract::Contract::from_json(&second.to_string()).unwrap(),
            ),
        ],
        MockConfig::default(),
    );
    let (base, _) = serve(mock).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/v2/pets/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-mock-operation"], "pet");
    let r = client
        .get(format!("{base}/other/pets/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-mock-operation"], "otherPet");
    let r = client.get(format!("{base}/pets/7")).send().await.unwrap();
    assert_eq!(
        r.status(),
        404,
        "with several documents, only under their base paths"
    );
}

#[tokio::test]
async fn no_validate_skips_parameters_and_bodies_not_credentials() {
    let config = MockConfig {
        validate: false,
        ..MockConfig::default()
    };
    let (base, _) = serve(mock_of_value(kinds(), config)).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/v2/pets/abc"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{base}/v2/bearer"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn a_changed_document_is_served_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.yaml");
    let doc = |op: &str| {
        format!("openapi: 3.0.0\ninfo: {{title: t, version: '1'}}\npaths:\n  /a:\n    get:\n      operationId: {op}\n      responses:\n        '200': {{description: ok}}\n")
    };
    std::fs::write(&path, doc("first")).unwrap();
    let (base, mock) = serve(mock_of(&path, MockConfig::default())).await;
    let client = reqwest::Client::new();
    let op = |client: reqwest::Client, base: String| async move {
        client
            .get(format!("{base}/a"))
            .send()
            .await
            .unwrap()
            .headers()["x-mock-operation"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(op(client.clone(), base.clone()).await, "first");
    // Modification times have a coarse grain on some file systems: wait past it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&path, doc("second")).unwrap();
    mock.reload_changed();
    assert_eq!(op(client.clone(), base.clone()).await, "second");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&path, "openapi: 3.0.0\npaths: [broken\n").unwrap();
    mock.reload_changed();
    assert_eq!(
        op(client.clone(), base.clone()).await,
        "second",
        "the old version keeps serving"
    );
}

#[tokio::test]
async fn proxy_mode_reports_what_breaks_the_document() {
    // The real server: answers /v2/pets/{id} with a body that breaks the document for id 13.
    let upstream = poem::Route::new().at(
        "/v2/pets/:id",
        poem::endpoint::make_sync(|req: poem::Request| {
            let id = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
            let body = if id == "13" {
                json!({"id": 13})
            } else {
                json!({"id": 7, "name": "Rex"})
            };
            poem::Response::builder()
                .content_type("application/json")
                .body(body.to_string())
        }),
    );
    let acceptor = {
        use poem::listener::Listener;
        poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap()
    };
    let addr = {
        use poem::listener::Acceptor;
        acceptor.local_addr()[0].as_socket_addr().copied().unwrap()
    };
    tokio::spawn(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run(upstream)
            .await
    });
    let proxy = |errors| MockConfig {
        proxy: Some(ProxyConfig {
            upstream: format!("http://{addr}"),
            errors,
        }),
        ..MockConfig::default()
    };
    let (base, mock) = serve(mock_of_value(kinds(), proxy(false))).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/v2/pets/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-mock-violation").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Rex");
    let r = client
        .get(format!("{base}/v2/pets/13"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "passed through");
    assert_eq!(
        r.headers()["x-mock-violation"],
        "response: pet 200: body.name is required"
    );
    let r = client
        .get(format!("{base}/v2/pets/abc"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["x-mock-violation"]
        .to_str()
        .unwrap()
        .starts_with("request: path.id"));
    let summary = mock.summary().unwrap();
    assert!(summary.starts_with("2 contract violation(s)"), "{summary}");
    assert!(
        summary.contains("pet: response: pet 200: body.name is required"),
        "{summary}"
    );

    let (base, _) = serve(mock_of_value(kinds(), proxy(true))).await;
    let r = client
        .get(format!("{base}/v2/pets/13"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["violations"],
        json!(["response: pet 200: body.name is required"])
    );
    assert_eq!(
        client
            .get(format!("{base}/v2/pets/7"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
