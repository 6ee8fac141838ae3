//! `template.yaml` as CloudFormation will see it: translated offline by aws-sam-translator
//! (`scripts/translate-template`), then held to the code. The REST API serves exactly the
//! routes the functions mount (and the local gateway merges), each with its `OPTIONS`;
//! the streaming routes use API Gateway response streaming; every function is a crate in
//! `functions/`; no role may touch what it does not name (`docs/deployment.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::collections::{BTreeMap, BTreeSet};

use llm_proxy_shared::rate_limit::{PARTITION_KEY, TTL_ATTRIBUTE};
use llm_proxy_shared::routes::Route;
use llm_proxy_tests::gateway::workspace_root;
use llm_proxy_tests::template::{of_type, resources, translated};
use serde_json::Value;

/// Logical id of each Lambda function → the binary (crate) it is built from.
fn binaries() -> BTreeMap<String, String> {
    of_type("AWS::Lambda::Function")
        .map(|(id, f)| {
            let binary = f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} names no binary to build"));
            (id.clone(), binary.to_owned())
        })
        .collect()
}

/// One method of the REST API: path, method, the binary behind it, its integration.
struct ApiMethod {
    path: String,
    method: String,
    binary: String,
    integration: Value,
}

fn api_methods() -> Vec<ApiMethod> {
    let binaries = binaries();
    let apis: Vec<_> = of_type("AWS::ApiGateway::RestApi").collect();
    assert_eq!(apis.len(), 1, "one REST API, one base URL");
    let paths = apis[0].1["Properties"]["Body"]["paths"]
        .as_object()
        .unwrap();
    let mut methods = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let integration = operation["x-amazon-apigateway-integration"].clone();
            let uri = integration["uri"]["Fn::Sub"].as_str().unwrap();
            let function = uri
                .split_once("/functions/${")
                .and_then(|(_, rest)| rest.split_once(".Arn}"))
                .map(|(function, _)| function)
                .unwrap_or_else(|| panic!("{uri}"));
            methods.push(ApiMethod {
                path: path.clone(),
                method: method.to_uppercase(),
                binary: binaries[function].clone(),
                integration,
            });
        }
    }
    methods
}

/// A function's routes as API Gateway paths: axum's greedy `{*id}` is `{id+}` there.
fn as_api<S>(binary: &str, routes: Vec<Route<S>>) -> Vec<(String, String, String)> {
    routes
        .into_iter()
        .map(|route| {
            let path = route
                .path
                .split('/')
                .map(|segment| match segment.strip_prefix("{*") {
                    Some(name) => format!("{{{}+}}", name.trim_end_matches('}')),
                    None => segment.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/");
            (path, route.method.to_string(), binary.to_owned())
        })
        .collect()
}

#[test]
fn the_api_serves_exactly_the_routes_the_functions_mount() {
    let mut local: Vec<_> = as_api("inference", inference::routes());
    local.extend(as_api("models", models::routes()));
    local.extend(as_api("stream", stream::routes()));
    let local: BTreeSet<_> = local.into_iter().collect();

    let methods = api_methods();
    let api: BTreeSet<_> = methods
        .iter()
        .filter(|m| m.method != "OPTIONS")
        .map(|m| (m.path.clone(), m.method.clone(), m.binary.clone()))
        .collect();
    assert_eq!(
        api, local,
        "template.yaml's API against the functions' routes"
    );

    // Every path answers preflights, from the function that serves it (its CORS rules).
    for (path, _, binary) in &local {
        assert!(
            methods
                .iter()
                .any(|m| &m.path == path && m.method == "OPTIONS" && &m.binary == binary),
            "no OPTIONS {path} to {binary}"
        );
    }
    assert_eq!(methods.len(), local.len() * 2, "no method besides these");
}

#[test]
fn the_stream_routes_use_response_streaming_and_the_rest_are_buffered() {
    for m in api_methods() {
        let integration = &m.integration;
        let uri = integration["uri"]["Fn::Sub"].as_str().unwrap();
        let label = format!("{} {}", m.method, m.path);
        assert_eq!(integration["type"], "aws_proxy", "{label}");
        if m.binary == "stream" {
            assert_eq!(integration["responseTransferMode"], "STREAM", "{label}");
            assert!(
                uri.contains("lambda:path/2021-11-15/functions/")
                    && uri.ends_with("/response-streaming-invocations"),
                "{label}: {uri}"
            );
            if m.method == "POST" {
                // A stream may run as long as the function may: 15 minutes.
                assert_eq!(integration["timeoutInMillis"], 900_000, "{label}");
            }
        } else {
            assert!(integration.get("responseTransferMode").is_none(), "{label}");
            assert!(uri.ends_with("/invocations"), "{label}: {uri}");
            assert!(integration.get("timeoutInMillis").is_none(), "{label}");
        }
    }
    // Regional: an edge-optimised API cuts an idle stream after 30 s.
    let (_, api) = of_type("AWS::ApiGateway::RestApi").next().unwrap();
    assert_eq!(
        api["Properties"]["EndpointConfiguration"]["Types"],
        serde_json::json!(["REGIONAL"])
    );
    // The stream function outlives API Gateway's stream limit by nothing, and ends a
    // stream itself before either.
    let (_, stream) = of_type("AWS::Lambda::Function")
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "stream")
        .unwrap();
    assert_eq!(stream["Properties"]["Timeout"], 900);
    let max: u64 = stream["Properties"]["Environment"]["Variables"]["STREAM_MAX_DURATION_MS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max < 900_000, "{max}");
}

#[test]
fn every_function_is_a_crate_in_functions_and_every_crate_is_deployed() {
    let deployed: BTreeSet<String> = binaries().into_values().collect();
    let crates: BTreeSet<String> = std::fs::read_dir(workspace_root().join("functions"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(deployed, crates);
    for (id, function) in of_type("AWS::Lambda::Function") {
        let properties = &function["Properties"];
        assert_eq!(properties["Runtime"], "provided.al2023", "{id}");
        assert_eq!(
            properties["Architectures"],
            serde_json::json!(["arm64"]),
            "{id}"
        );
        assert_eq!(properties["Handler"], "bootstrap", "{id}");
        // Its own log group, which has a retention.
        let group = properties["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap();
        let group = &resources()[group];
        assert_eq!(group["Type"], "AWS::Logs::LogGroup", "{id}");
        assert!(group["Properties"]["RetentionInDays"].is_object(), "{id}");
    }
}

/// Every IAM statement in the translated template, with the role it belongs to.
fn statements() -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for (id, role) in of_type("AWS::IAM::Role") {
        assert!(
            role["Properties"].get("ManagedPolicyArns").is_none(),
            "{id}: managed policies grant on *"
        );
        for policy in role["Properties"]["Policies"].as_array().unwrap() {
            for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                all.push((id.clone(), statement.clone()));
            }
        }
    }
    assert!(of_type("AWS::IAM::Policy").next().is_none());
    all
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::String(s) => vec![s.clone()],
        // An intrinsic: !GetAtt/!Ref name a resource of this stack; !Sub a pattern.
        other => vec![other.to_string()],
    }
}

#[test]
fn no_role_may_act_on_everything() {
    let statements = statements();
    assert!(!statements.is_empty());
    for (role, statement) in &statements {
        assert_eq!(statement["Effect"], "Allow", "{role}");
        for resource in strings(&statement["Resource"]) {
            assert_ne!(resource, "*", "{role}: {statement}");
            assert!(!resource.ends_with(":*\""), "{role}: {resource}");
        }
        for action in strings(&statement["Action"]) {
            assert!(!action.contains('*'), "{role}: {action}");
        }
    }
    // Counters are updated, never read back in bulk: the table holds every client's
    // (hashed) counters. ManageConnections only on this WebSocket API.
    let actions: BTreeSet<String> = statements
        .iter()
        .flat_map(|(_, s)| strings(&s["Action"]))
        .collect();
    for forbidden in ["dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem"] {
        assert!(!actions.contains(forbidden), "{forbidden}");
    }
    for (role, statement) in &statements {
        if strings(&statement["Action"]).contains(&"execute-api:ManageConnections".to_owned()) {
            for resource in strings(&statement["Resource"]) {
                assert!(resource.contains("${WebSocketApi}/"), "{role}: {resource}");
            }
        }
    }
    // Every function's role may update counters.
    let updaters: BTreeSet<&str> = statements
        .iter()
        .filter(|(_, s)| strings(&s["Action"]).contains(&"dynamodb:UpdateItem".to_owned()))
        .map(|(role, _)| role.as_str())
        .collect();
    assert_eq!(updaters.len(), binaries().len());
}

#[test]
fn the_counter_table_is_defined_as_the_code_uses_it() {
    let tables: Vec<_> = of_type("AWS::DynamoDB::Table").collect();
    assert_eq!(tables.len(), 1);
    let table = &tables[0].1["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["KeySchema"],
        serde_json::json!([{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        serde_json::json!([{"AttributeName": PARTITION_KEY, "AttributeType": "S"}])
    );
    assert_eq!(
        table["TimeToLiveSpecification"],
        serde_json::json!({"AttributeName": TTL_ATTRIBUTE, "Enabled": true})
    );
}

#[test]
fn secrets_stay_out_of_the_template_text() {
    let template = translated();
    let key = &template["Parameters"]["OpenRouterApiKey"];
    assert_eq!(key["NoEcho"], true);
    assert!(key.get("Default").is_none());
    // Both keys live in Secrets Manager (the hashing key generated there): a function's
    // configuration names the secrets, never holds a key, and its role may read those
    // two secrets and no other.
    let secret = &resources()["OpenRouterApiKeySecret"];
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    assert_eq!(
        secret["Properties"]["SecretString"]["Ref"],
        "OpenRouterApiKey"
    );
    let named = serde_json::json!([{"Ref": "OpenRouterApiKeySecret"}, {"Ref": "RateLimitHashKey"}]);
    let statements = statements();
    for (id, function) in of_type("AWS::Lambda::Function") {
        let vars = &function["Properties"]["Environment"]["Variables"];
        assert!(vars.get("OPENROUTER_API_KEY").is_none(), "{id}");
        assert!(vars.get("RATE_LIMIT_HASH_KEY").is_none(), "{id}");
        assert_eq!(
            vars["OPENROUTER_API_KEY_SECRET"]["Ref"], "OpenRouterApiKeySecret",
            "{id}"
        );
        assert_eq!(
            vars["RATE_LIMIT_HASH_KEY_SECRET"]["Ref"], "RateLimitHashKey",
            "{id}"
        );
        let role = function["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap();
        let reads: Vec<&Value> = statements
            .iter()
            .filter(|(owner, s)| owner == role && s["Action"] == "secretsmanager:GetSecretValue")
            .map(|(_, s)| &s["Resource"])
            .collect();
        assert_eq!(reads, [&named], "{id}: {role}");
    }
    // No parameter but the key must be given.
    let required: Vec<&String> = template["Parameters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, p)| p.get("Default").is_none())
        .map(|(name, _)| name)
        .collect();
    assert_eq!(required, ["OpenRouterApiKey"]);
}

#[test]
fn the_websocket_api_routes_to_its_function_and_the_outputs_name_every_url() {
    let routes: BTreeSet<&str> = of_type("AWS::ApiGatewayV2::Route")
        .map(|(_, r)| r["Properties"]["RouteKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        routes,
        BTreeSet::from(["$connect", "$default", "$disconnect"])
    );
    let (_, integration) = of_type("AWS::ApiGatewayV2::Integration").next().unwrap();
    let uri = integration["Properties"]["IntegrationUri"]["Fn::Sub"]
        .as_str()
        .unwrap();
    assert!(uri.contains("${WebSocketFunction.Arn}"), "{uri}");
    assert_eq!(binaries()["WebSocketFunction"], "websocket");

    let outputs = translated()["Outputs"].as_object().unwrap();
    let sub = |name: &str| {
        outputs[name]["Value"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(sub("ApiUrl").starts_with("https://${Api}.execute-api."));
    assert!(sub("SdkBaseUrl").ends_with("/${StageName}/api/v1"));
    assert!(sub("WebSocketUrl").starts_with("wss://${WebSocketApi}.execute-api."));
    assert_eq!(
        outputs["RateLimitTableName"]["Value"]["Ref"],
        "RateLimitTable"
    );
}

#[test]
fn api_gateways_own_answers_have_the_proxys_error_shape() {
    let (_, api) = of_type("AWS::ApiGateway::RestApi").next().unwrap();
    let responses = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
        .as_object()
        .unwrap();
    // No route, throttling, a body over the limit, a slow function, and whatever else
    // API Gateway may answer on its own.
    for kind in [
        "MISSING_AUTHENTICATION_TOKEN",
        "THROTTLED",
        "REQUEST_TOO_LARGE",
        "INTEGRATION_TIMEOUT",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    ] {
        let response = &responses[kind];
        let status: u64 = response["statusCode"].as_str().unwrap().parse().unwrap();
        let body: Value = serde_json::from_str(
            response["responseTemplates"]["application/json"]
                .as_str()
                .unwrap(),
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(body["error"]["code"], status, "{kind}");
        assert!(body["error"]["message"].is_string(), "{kind}");
        let kinds = [
            "validation",
            "not_found",
            "rate_limit",
            "timeout",
            "internal",
        ];
        assert!(
            kinds.contains(&body["error"]["type"].as_str().unwrap()),
            "{kind}: {body}"
        );
    }
    assert_eq!(
        responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"],
        "404"
    );
    assert_eq!(
        responses["THROTTLED"]["responseParameters"]["gatewayresponse.header.Retry-After"],
        "'1'"
    );
}

#[test]
fn an_sdk_given_the_one_base_url_finds_chat_streaming_and_the_model_list() {
    // The OpenAI and OpenRouter SDKs append these to their base URL.
    let base = translated()["Outputs"]["SdkBaseUrl"]["Value"]["Fn::Sub"]
        .as_str()
        .unwrap();
    let prefix = base.split("${StageName}").nth(1).unwrap();
    assert_eq!(prefix, "/api/v1");
    let methods = api_methods();
    let find = |method: &str, path: &str| {
        methods
            .iter()
            .find(|m| m.method == method && m.path == format!("{prefix}{path}"))
            .unwrap_or_else(|| panic!("no {method} {prefix}{path}"))
    };
    let chat = find("POST", "/chat/completions");
    assert_eq!(chat.integration["responseTransferMode"], "STREAM");
    find("GET", "/models");
    find("GET", "/models/{id+}");
    find("GET", "/models/count");
}
