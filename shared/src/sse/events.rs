//! SSE framing: where events end, whether they are well formed, and what data they
//! carry.

/// Where an event ends if its blank line starts at `i` (just past that blank line).
fn blank_line_end(buffer: &[u8], i: usize) -> Option<usize> {
    match (buffer.get(i), buffer.get(i + 1), buffer.get(i + 2)) {
        (Some(b'\n'), Some(b'\n'), _) => Some(i + 2),
        (Some(b'\n'), Some(b'\r'), Some(b'\n')) => Some(i + 3),
        _ => None,
    }
}

/// Where the last complete event in `buffer` ends (just past its blank line).
pub fn last_event_end(buffer: &[u8], scan_from: usize) -> Option<usize> {
    let mut end = None;
    let mut i = scan_from;
    while i + 1 < buffer.len() {
        match blank_line_end(buffer, i) {
            Some(past) => {
                end = Some(past);
                i = past;
            }
            None => i += 1,
        }
    }
    end
}

/// Where the first event in `events` ends (just past its blank line).
pub fn first_event_end(events: &[u8]) -> Option<usize> {
    (0..events.len()).find_map(|i| blank_line_end(events, i))
}

/// Checks complete events line by line: fields, comments, and `data:` that is JSON or
/// `[DONE]`. `Ok(saw_done)`, or `Err(bytes of whole valid events before the bad one)`.
pub fn check_events(events: &[u8]) -> Result<bool, usize> {
    let mut saw_done = false;
    let mut event_start = 0;
    let mut offset = 0;
    for line in events.split_inclusive(|b| *b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        offset += line.len();
        if text.is_empty() {
            event_start = offset;
            continue;
        }
        let valid = if text.starts_with(b":") {
            true
        } else if let Some(data) = text.strip_prefix(b"data:") {
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if data == b"[DONE]" {
                saw_done = true;
                true
            } else {
                serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
            }
        } else {
            [&b"event:"[..], b"id:", b"retry:"]
                .iter()
                .any(|field| text.starts_with(field))
        };
        if !valid {
            return Err(event_start);
        }
    }
    Ok(saw_done)
}

/// The `data` of each event in `events` (complete events, as the relay hands them
/// on), in order; comments and events without data are skipped. Lines of one event's
/// data are joined with `\n`, as the SSE standard says.
pub fn event_data(events: &[u8]) -> Vec<std::borrow::Cow<'_, [u8]>> {
    let mut out = Vec::new();
    let mut current: Option<std::borrow::Cow<'_, [u8]>> = None;
    for line in events.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            out.extend(current.take());
            continue;
        }
        let Some(data) = line.strip_prefix(b"data:") else {
            continue;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        current = Some(match current.take() {
            None => std::borrow::Cow::Borrowed(data),
            Some(previous) => {
                let mut joined = previous.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(data);
                std::borrow::Cow::Owned(joined)
            }
        });
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_read_per_event() {
        let events = b": OPENROUTER PROCESSING\n\ndata: {\"a\":1}\n\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]\n\n";
        let data = event_data(events);
        let data: Vec<&[u8]> = data.iter().map(|d| &d[..]).collect();
        assert_eq!(data, [&b"{\"a\":1}"[..], b"one\ntwo", b"[DONE]"]);
    }

    #[test]
    fn events_end_at_blank_lines() {
        assert_eq!(
            last_event_end(b"data: 1\n\ndata: 2\n\ndata: 3", 0),
            Some(18)
        );
        assert_eq!(last_event_end(b"data: 1\n", 0), None);
        assert_eq!(last_event_end(b": ping\r\n\r\n", 0), Some(10));
    }

    #[test]
    fn garbage_is_found_after_the_last_good_event() {
        assert_eq!(
            check_events(b": OPENROUTER PROCESSING\n\ndata: {\"a\":1}\n\n"),
            Ok(false)
        );
        assert_eq!(
            check_events(b"data: {\"a\":1}\n\ndata: [DONE]\n\n"),
            Ok(true)
        );
        assert_eq!(
            check_events(b"data: {\"a\":1}\n\n<html>oops</html>\n\n"),
            Err(15)
        );
        assert_eq!(check_events(b"data: {\"a\":\n\n"), Err(0));
        assert_eq!(
            check_events(b"event: x\nid: 3\nretry: 10\ndata: {}\n\n"),
            Ok(false)
        );
    }
}
