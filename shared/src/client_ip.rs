//! `ClientIp`: the address the platform saw the request come from.
//!
//! On Lambda that is API Gateway's `requestContext` source IP (REST v1, HTTP API v2 and
//! Function URL payloads, WebSocket events); locally it is the socket peer. Headers such
//! as `X-Forwarded-For` are written by the client and never consulted: trusting them
//! would let anyone pick their own rate-limit counter.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use lambda_http::request::RequestContext;

use crate::error::{ApiError, InternalError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// Finds the client address among a request's extensions: the Lambda request
    /// context when the runtime put one there, else the local socket peer.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        if let Some(context) = extensions.get::<RequestContext>() {
            return from_lambda_context(context);
        }
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| Self::from_socket(*addr))
    }
}

impl ClientIp {
    /// The client as the limits count it: an IPv4 address, or an IPv6 /64 (one
    /// subscriber's usual allocation).
    pub fn subscriber(self) -> IpAddr {
        match self.0 {
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
            v4 => v4,
        }
    }

    /// A socket peer, as the local gateway sees it.
    pub fn from_socket(peer: SocketAddr) -> Self {
        Self(canonical(peer.ip()))
    }

    /// The address API Gateway reports (`requestContext.identity.sourceIp`).
    pub fn from_source_ip(source: &str) -> Option<Self> {
        source.trim().parse().ok().map(|ip| Self(canonical(ip)))
    }
}

fn from_lambda_context(context: &RequestContext) -> Option<ClientIp> {
    let source = match context {
        RequestContext::ApiGatewayV1(c) => c.identity.source_ip.as_deref(),
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.as_deref(),
        RequestContext::WebSocket(c) => c.identity.source_ip.as_deref(),
        _ => None,
    }?;
    ClientIp::from_source_ip(source)
}

/// An IPv4 client reaching a dual-stack socket appears as `::ffff:a.b.c.d`; it is the
/// same client as `a.b.c.d` and must share its counters.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_extensions(&parts.extensions)
            .ok_or(ApiError::Internal(InternalError::NoClientAddress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lambda_context(value: serde_json::Value) -> RequestContext {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn rest_v1_context_gives_identity_source_ip() {
        let mut ext = http::Extensions::new();
        ext.insert(lambda_context(json!({
            "accountId": "123456789012", "resourceId": "abc", "stage": "prod",
            "requestId": "r", "resourcePath": "/api/v1/inference", "httpMethod": "POST",
            "apiId": "a", "identity": {"sourceIp": "203.0.113.7"}
        })));
        assert_eq!(
            ClientIp::from_extensions(&ext),
            Some(ClientIp("203.0.113.7".parse().unwrap()))
        );
    }

    #[test]
    fn http_v2_context_gives_http_source_ip() {
        let mut ext = http::Extensions::new();
        ext.insert(lambda_context(json!({
            "accountId": "123456789012", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 1,
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                     "sourceIp": "2001:db8::1", "userAgent": "curl"}
        })));
        assert_eq!(
            ClientIp::from_extensions(&ext),
            Some(ClientIp("2001:db8::1".parse().unwrap()))
        );
    }

    #[test]
    fn socket_peer_is_used_locally_and_mapped_v4_is_unwrapped() {
        let mut ext = http::Extensions::new();
        ext.insert(ConnectInfo::<SocketAddr>(
            "[::ffff:192.0.2.1]:5555".parse().unwrap(),
        ));
        assert_eq!(
            ClientIp::from_extensions(&ext),
            Some(ClientIp("192.0.2.1".parse().unwrap()))
        );
    }

    #[tokio::test]
    async fn x_forwarded_for_is_ignored() {
        let (mut parts, ()) = http::Request::builder()
            .header("x-forwarded-for", "198.51.100.99")
            .header("x-real-ip", "198.51.100.98")
            .body(())
            .unwrap()
            .into_parts();
        parts
            .extensions
            .insert(ConnectInfo::<SocketAddr>("127.0.0.1:4000".parse().unwrap()));
        let ip = ClientIp::from_request_parts(&mut parts, &()).await.unwrap();
        assert_eq!(ip, ClientIp("127.0.0.1".parse().unwrap()));
    }
}
