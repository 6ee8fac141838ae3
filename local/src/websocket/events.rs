//! The events API Gateway sends a WebSocket API's integration, built in the exact JSON
//! shape it uses (`$connect` with the upgrade's headers, `$default` with the message
//! as `body`, `$disconnect` with the close code), so the handler cannot tell the local
//! emulation from AWS.

use std::net::IpAddr;
use std::time::SystemTime;

use http::HeaderMap;
use serde_json::{Map, Value, json};

/// What the emulation says about itself where API Gateway names its API and stage.
pub struct Api {
    /// `host:port` of the local gateway (API Gateway's `domainName`).
    pub domain: String,
    pub stage: &'static str,
}

/// One connection's facts, as every event of it repeats them.
pub struct Connection<'a> {
    pub id: &'a str,
    pub connected_at: u64,
    pub source_ip: IpAddr,
}

fn context(
    api: &Api,
    connection: &Connection<'_>,
    route: &str,
    event_type: &str,
    now: (u64, String),
) -> Map<String, Value> {
    let (epoch, time) = now;
    let request_id = crate::websocket::random_id(16);
    let mut context = json!({
        "routeKey": route, "eventType": event_type,
        "extendedRequestId": request_id, "requestTime": time,
        "messageDirection": "IN", "stage": api.stage, "connectedAt": connection.connected_at,
        "requestTimeEpoch": epoch, "identity": {"sourceIp": connection.source_ip.to_string()},
        "requestId": request_id, "domainName": api.domain,
        "connectionId": connection.id, "apiId": "local",
    });
    context
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default()
}

/// `$connect`: the upgrade request's headers come along, and its id (API Gateway's
/// `$connect` carries the handshake's request id) when it has one.
pub fn connect(
    api: &Api,
    connection: &Connection<'_>,
    headers: &HeaderMap,
    request_id: Option<&str>,
) -> Value {
    let mut single = Map::new();
    let mut multi = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| json!(v))
            .collect();
        if let Some(last) = values.last() {
            single.insert(name.to_string(), last.clone());
        }
        multi.insert(name.to_string(), Value::Array(values));
    }
    let mut context = context(api, connection, "$connect", "CONNECT", now());
    if let Some(id) = request_id {
        context.insert("requestId".into(), json!(id));
        context.insert("extendedRequestId".into(), json!(id));
    }
    if let Some(agent) = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        context
            .get_mut("identity")
            .and_then(Value::as_object_mut)
            .map(|identity| identity.insert("userAgent".into(), json!(agent)));
    }
    json!({"headers": single, "multiValueHeaders": multi, "requestContext": context,
           "isBase64Encoded": false})
}

/// `$default`: a client message. API Gateway gives each a `messageId`; a binary
/// frame arrives base64-encoded.
pub fn message(api: &Api, connection: &Connection<'_>, body: String, binary: bool) -> Value {
    let mut context = context(api, connection, "$default", "MESSAGE", now());
    context.insert("messageId".into(), json!(crate::websocket::random_id(15)));
    json!({"requestContext": context, "body": body, "isBase64Encoded": binary})
}

/// `$disconnect`: how the connection ended.
pub fn disconnect(api: &Api, connection: &Connection<'_>, code: u16, reason: &str) -> Value {
    let mut context = context(api, connection, "$disconnect", "DISCONNECT", now());
    context.insert("disconnectStatusCode".into(), json!(code));
    context.insert("disconnectReason".into(), json!(reason));
    json!({"headers": {"Host": api.domain, "x-api-key": "", "X-Forwarded-For": "",
                       "x-restapi": ""},
           "multiValueHeaders": {"Host": [api.domain], "x-api-key": [""],
                                 "X-Forwarded-For": [""], "x-restapi": [""]},
           "requestContext": context, "isBase64Encoded": false})
}

/// Unix milliseconds, and the time as API Gateway writes `requestTime`
/// (`09/Feb/2024:18:23:28 +0000`).
fn now() -> (u64, String) {
    let now = SystemTime::now();
    let epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    (
        epoch,
        request_time(&humantime::format_rfc3339_seconds(now).to_string()),
    )
}

/// `2024-02-09T18:23:28Z` → `09/Feb/2024:18:23:28 +0000`.
fn request_time(rfc3339: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (Some(year), Some(month), Some(day), Some(time)) = (
        rfc3339.get(0..4),
        rfc3339.get(5..7).and_then(|m| m.parse::<usize>().ok()),
        rfc3339.get(8..10),
        rfc3339.get(11..19),
    ) else {
        return rfc3339.to_owned();
    };
    let month = MONTHS.get(month.wrapping_sub(1)).copied().unwrap_or("Jan");
    format!("{day}/{month}/{year}:{time} +0000")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

    fn api() -> Api {
        Api {
            domain: "127.0.0.1:3000".into(),
            stage: "local",
        }
    }

    #[test]
    fn request_time_is_written_as_api_gateway_writes_it() {
        assert_eq!(
            request_time("2024-02-09T18:23:28Z"),
            "09/Feb/2024:18:23:28 +0000"
        );
    }

    #[test]
    fn the_events_read_as_api_gateway_events() {
        let connection = Connection {
            id: "AAAA1234=",
            connected_at: 1_707_503_007_396,
            source_ip: "192.0.2.1".parse().unwrap(),
        };
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", "wscat".parse().unwrap());
        for event in [
            connect(&api(), &connection, &headers, Some("GXLJvFu1FiAFtGQ=")),
            message(&api(), &connection, "{\"type\":\"ping\"}".into(), false),
            disconnect(&api(), &connection, 1000, "bye"),
        ] {
            assert!(event.get("httpMethod").is_none(), "no REST shape: {event}");
            let request: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event).unwrap();
            let context = request.request_context;
            assert_eq!(context.connection_id.as_deref(), Some("AAAA1234="));
            assert_eq!(context.connected_at, 1_707_503_007_396);
            assert_eq!(context.identity.source_ip.as_deref(), Some("192.0.2.1"));
        }
        let request: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(message(&api(), &connection, "x".into(), false)).unwrap();
        assert_eq!(
            request.request_context.route_key.as_deref(),
            Some("$default")
        );
        assert!(request.request_context.message_id.is_some());
        assert_eq!(request.body.as_deref(), Some("x"));
    }
}
