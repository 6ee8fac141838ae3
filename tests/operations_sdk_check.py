"""The official OpenAI and Anthropic Python SDKs against llm-proxy's other inference
operations, client code unchanged but for the base URL. Usage:
operations_sdk_check.py BASE_URL (e.g. http://127.0.0.1:3000). Prints one line per
call and what it returned, and exits non-zero on the first failure."""

import sys

import anthropic
from openai import OpenAI

base = sys.argv[1].rstrip("/")
client = OpenAI(base_url=base + "/api/v1", api_key="unused", max_retries=0, timeout=20)

# Responses, not streamed: the captured answer (a description of an image).
response = client.responses.create(model="anthropic/claude-sonnet-4", input="What is this?")
assert response.object == "response", response
text = "".join(
    part.text for item in response.output if item.type == "message" for part in item.content
)
assert text == "Google logo", response
print("responses.create:", response.model, repr(text[:40]), response.usage.total_tokens)

# Responses, streamed: events until response.completed.
kinds = []
completed = None
for event in client.responses.create(model="openai/gpt-oss-20b", input="What is 2+2?", stream=True):
    kinds.append(event.type)
    if event.type == "response.completed":
        completed = event.response
assert kinds[0] == "response.created" and completed is not None, kinds
final = [p.text for i in completed.output if i.type == "message" for p in i.content]
assert final == ["4"], final
print("responses.create(stream=True):", len(kinds), "events, output", final)

# Legacy completions.
completion = client.completions.create(model="openai/gpt-3.5-turbo-instruct", prompt="Once")
assert completion.choices[0].text == "Once upon a time", completion
print("completions.create:", repr(completion.choices[0].text), completion.usage.total_tokens)
pieces = [c.choices[0].text for c in client.completions.create(
    model="openai/gpt-3.5-turbo-instruct", prompt="Once", stream=True) if c.choices]
assert "".join(pieces) == "Once upon a time", pieces
print("completions.create(stream=True):", repr("".join(pieces)))

# Embeddings.
embedding = client.embeddings.create(model="openai/text-embedding-3-small", input="Ruby is great")
vector = embedding.data[0].embedding
assert len(vector) == 1536, len(vector)
print("embeddings.create:", embedding.model, len(vector), "dimensions")

# Transcription: the SDK uploads the file as multipart/form-data.
wav = b"RIFF$\x00\x00\x00WAVEfmt " + bytes(range(256)) * 64
transcription = client.audio.transcriptions.create(model="openai/gpt-4o-mini-transcribe",
                                                   file=("hello.wav", wav, "audio/wav"))
assert transcription.text.startswith("Ruby is a programming language"), transcription
print("audio.transcriptions.create:", repr(transcription.text))

# Speech: the audio bytes as OpenRouter sent them.
speech = client.audio.speech.create(model="hexgrad/kokoro-82m", voice="af_heart", input="Hello")
audio = speech.read()
assert audio.startswith(b"ID3") and len(audio) == 17517, len(audio)
print("audio.speech.create:", speech.response.headers["content-type"], len(audio), "bytes")

# Anthropic's Messages, with base_url=<proxy>/api as Anthropic's SDK expects.
claude = anthropic.Anthropic(base_url=base + "/api", api_key="unused", max_retries=0, timeout=20)
message = claude.messages.create(
    model="anthropic/claude-sonnet-5",
    max_tokens=200,
    messages=[{"role": "user", "content": "Title this bug"}],
)
assert message.content[0].text.startswith('{"title"'), message
print("messages.create:", message.stop_reason, repr(message.content[0].text))
with claude.messages.stream(
    model="anthropic/claude-sonnet-5",
    max_tokens=200,
    messages=[{"role": "user", "content": "Title this bug"}],
) as stream:
    streamed = "".join(stream.text_stream)
    final = stream.get_final_message()
assert streamed == '{"title":"lookup off-by-one bounds bug"}', streamed
assert final.stop_reason == "end_turn", final
print("messages.stream:", final.stop_reason, repr(streamed))

print("done")
