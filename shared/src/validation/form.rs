//! `multipart/form-data` bodies (RFC 7578), as the OpenAI SDK uploads audio
//! (`docs/http-api.md`, "Inference operations"): the parts the spend guard reads, with
//! the rest (the file above all) passed through as the caller's bytes.

use std::collections::HashSet;

use bytes::Bytes;
use http::HeaderValue;

use super::{Request, check_model_id};
use crate::error::{ApiError, quote};

/// The form part that carries the upload.
const FILE: &str = "file";

/// The parts the proxy reads, each of which may be given once (what the proxy checks
/// must be what OpenRouter reads); any other part is OpenRouter's business.
const READ: [&str; 3] = ["model", FILE, "stream"];

/// Validates a form `body` whose `Content-Type` (with its boundary) is
/// `content_type`: one `model` part with a model id and one `file` part.
pub async fn validate_form(body: Bytes, content_type: &HeaderValue) -> Result<Request, ApiError> {
    let content_type = content_type
        .to_str()
        .map_err(|_| unreadable("its Content-Type"))?;
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::validation(
            "content-type",
            "A multipart/form-data body needs a boundary",
        )
    })?;
    let parts = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(parts, boundary);
    let mut seen = HashSet::new();
    let mut request = Request::default();
    while let Some(part) = form
        .next_field()
        .await
        .map_err(|e| unreadable(&e.to_string()))?
    {
        let Some(name) = part.name().map(str::to_owned) else {
            return Err(ApiError::validation(
                "body",
                "Every part of the form needs a name",
            ));
        };
        // As every SDK names them: a name that quoting or an encoding could make read
        // differently upstream is refused.
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"_.-[]".contains(&b);
        if name.is_empty() || !name.bytes().all(plain) {
            return Err(ApiError::validation(
                "body",
                format!(
                    "The part name {:?} is not accepted: part names are ASCII letters, digits and _ . - [ ]",
                    quote(&name)
                ),
            ));
        }
        if READ.contains(&name.as_str()) && !seen.insert(name.clone()) {
            return Err(ApiError::validation(
                quote(&name).into_owned(),
                "This part is given twice; give each part once",
            ));
        }
        match name.as_str() {
            "model" => {
                let text = part.text().await.map_err(|e| unreadable(&e.to_string()))?;
                if text.trim().is_empty() {
                    return Err(ApiError::validation(
                        "model",
                        "Model must be a model id such as openai/whisper-1",
                    ));
                }
                request.model = Some(check_model_id("model", text.into())?);
            }
            "stream" => {
                let text = part.text().await.map_err(|e| unreadable(&e.to_string()))?;
                request.stream = Some(text.trim() == "true");
            }
            _ => {
                // Read through: a part cut short is a malformed body, refused here
                // rather than upstream.
                part.bytes().await.map_err(|e| unreadable(&e.to_string()))?;
            }
        }
    }
    if request.model.is_none() {
        return Err(ApiError::validation("model", "Model is required"));
    }
    if !seen.contains(FILE) {
        return Err(ApiError::validation(
            FILE,
            "file is required (the audio to transcribe)",
        ));
    }
    Ok(request)
}

fn unreadable(why: &str) -> ApiError {
    ApiError::validation(
        "body",
        format!(
            "The multipart/form-data body could not be read: {}",
            quote(why)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "multipart/form-data; boundary=XyZ";

    fn form(parts: &[(&str, &str)]) -> Bytes {
        let mut body = String::new();
        for (name, value) in parts {
            let filename = if *name == FILE {
                "; filename=\"a.wav\""
            } else {
                ""
            };
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str("--XyZ--\r\n");
        Bytes::from(body)
    }

    async fn check(body: Bytes) -> Result<Request, ApiError> {
        validate_form(body, &HeaderValue::from_static(TYPE)).await
    }

    fn field(error: ApiError) -> String {
        error.error_object()["details"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn reads_the_model_and_requires_a_file() {
        let request = check(form(&[("model", "openai/whisper-1"), ("file", "RIFF....")]))
            .await
            .unwrap();
        assert_eq!(request.model.as_deref(), Some("openai/whisper-1"));
        assert_eq!(
            field(check(form(&[("model", "a/b")])).await.unwrap_err()),
            "file"
        );
        assert_eq!(
            field(check(form(&[("file", "x")])).await.unwrap_err()),
            "model"
        );
        assert_eq!(
            field(
                check(form(&[("model", "a b"), ("file", "x")]))
                    .await
                    .unwrap_err()
            ),
            "model"
        );
    }

    #[tokio::test]
    async fn a_part_twice_or_a_broken_body_is_refused() {
        let twice = form(&[("model", "a/b"), ("file", "x"), ("model", "c/d")]);
        assert_eq!(field(check(twice).await.unwrap_err()), "model");
        let cut = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\na/b",
        );
        assert_eq!(field(check(cut).await.unwrap_err()), "body");
        let no_boundary =
            validate_form(form(&[]), &HeaderValue::from_static("multipart/form-data")).await;
        assert_eq!(field(no_boundary.unwrap_err()), "content-type");
        assert_eq!(
            field(check(Bytes::from_static(b"garbage")).await.unwrap_err()),
            "body"
        );
        let unnamed = form(&[("model", "a/b"), ("file", "x"), ("", "")]);
        assert_eq!(field(check(unnamed).await.unwrap_err()), "body");
        let odd_name = form(&[("model", "a/b"), ("file", "x"), ("a b", "c")]);
        assert_eq!(field(check(odd_name).await.unwrap_err()), "body");
        let others_twice = form(&[
            ("model", "a/b"),
            ("file", "x"),
            ("language", "en"),
            ("language", "fr"),
        ]);
        assert!(check(others_twice).await.is_ok(), "OpenRouter's business");
    }
}
