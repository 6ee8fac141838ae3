"""The official OpenAI Python SDK against llm-proxy, client code unchanged but for
base_url. Usage: openai_sdk_check.py BASE_URL (e.g. http://127.0.0.1:3000/api/v1).
Prints one line per check and exits non-zero on the first failure."""

import json
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="not-needed", max_retries=0, timeout=20)

# A plain answer: the mock says back the prompt, as the model asked for.
answer = client.chat.completions.create(
    model="anthropic/claude-sonnet-4",
    messages=[{"role": "user", "content": "Hello, world!"}],
)
assert answer.object == "chat.completion", answer
assert answer.model == "anthropic/claude-sonnet-4", answer
assert answer.choices[0].message.content == "You said: Hello, world!", answer
assert answer.usage.completion_tokens == 4, answer.usage
print("non-streamed:", answer.choices[0].finish_reason, answer.usage.total_tokens)

# A streamed answer, assembled.
text = ""
finish = None
for chunk in client.chat.completions.create(
    model="mock/stream-text",
    messages=[{"role": "user", "content": "Say something"}],
    stream=True,
):
    for choice in chunk.choices:
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
assert text.startswith("Pebbles"), text
assert finish == "stop", finish
print("streamed:", repr(text[:40]), finish)

# Streamed tool calls, assembled into complete arguments.
calls = {}
for chunk in client.chat.completions.create(
    model="mock/stream-tool-calls",
    messages=[{"role": "user", "content": "Which version?"}],
    tools=[{"type": "function", "function": {"name": "llm_version", "parameters": {"type": "object"}}}],
    stream=True,
):
    for choice in chunk.choices:
        for call in choice.delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = call.id or entry["id"]
            if call.function and call.function.name:
                entry["name"] += call.function.name
            if call.function and call.function.arguments:
                entry["arguments"] += call.function.arguments
assert calls, "no tool calls"
for entry in calls.values():
    assert entry["id"] and entry["name"] == "llm_version", entry
    json.loads(entry["arguments"] or "{}")
print("tool calls:", [(c["name"], c["arguments"]) for c in calls.values()])

# An upstream error reaches the SDK as its own exception type, with the status.
try:
    client.chat.completions.create(model="mock/status-429", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("expected a 429")
except Exception as error:  # noqa: BLE001 - the SDK's RateLimitError
    assert type(error).__name__ == "RateLimitError", type(error)
    print("error:", type(error).__name__)
print("all OpenAI SDK checks passed")
