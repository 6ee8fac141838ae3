"""Smoke-tests a deployment (or the local gateway): scripts/smoke <ApiUrl> <WebSocketUrl>.

Each check prints one line: ok or FAIL, its name, what it saw. The exit status is the
number of failed checks (0: all passed). One chat answer, one stream and one WebSocket
answer go to OpenRouter: with the default model, a fraction of a cent.
"""

import argparse
import json
import sys
import time

import httpx
from websockets.sync.client import connect

PROMPT = "Reply with the single word: pong"


class Smoke:
    def __init__(self, api, ws, model):
        self.api = api.rstrip("/")
        self.ws = ws.rstrip("/")
        self.model = model
        self.http = httpx.Client(timeout=60.0)
        self.checks = 0
        self.failed = 0
        # The chat answer's headers, which the rate-header check reads.
        self.chat_headers = None

    def check(self, name, run):
        started = time.monotonic()
        try:
            seen = run()
            ok = True
        except Exception as error:  # a smoke test reports every failure, whatever it is
            seen = f"{type(error).__name__}: {error}"
            ok = False
        ms = (time.monotonic() - started) * 1000
        self.checks += 1
        if not ok:
            self.failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {name:<12} {seen} ({ms:.0f} ms)", flush=True)

    def chat_body(self, **extra):
        body = {"model": self.model, "max_tokens": 16,
                "messages": [{"role": "user", "content": PROMPT}]}
        body.update(extra)
        return body

    def health(self):
        response = self.http.get(f"{self.api}/health")
        expect(response.status_code == 200, f"status {response.status_code}")
        status = response.json()["status"]
        expect(status == "healthy", f"status {status!r}: {response.json().get('warnings')}")
        return f"200, status {status}"

    def chat(self):
        response = self.http.post(f"{self.api}/api/v1/chat/completions",
                                  json=self.chat_body())
        expect(response.status_code == 200,
               f"status {response.status_code}: {response.text[:200]}")
        answer = response.json()
        text = answer["choices"][0]["message"]["content"]
        self.chat_headers = response.headers
        return (f"200, {answer['usage']['total_tokens']} tokens, "
                f"request id {response.headers['x-request-id']}, said {text[:40]!r}")

    def rate_headers(self):
        headers = self.chat_headers
        expect(headers is not None, "no chat answer to read them from")
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                     "ratelimit-policy", "ratelimit"):
            expect(name in headers, f"no {name}")
        return (f"limit {headers['x-ratelimit-limit']}, remaining "
                f"{headers['x-ratelimit-remaining']}, policy {headers['ratelimit-policy']}")

    def stream(self):
        started = time.monotonic()
        first = None
        events = 0
        done = False
        with self.http.stream("POST", f"{self.api}/api/v1/chat/completions",
                              json=self.chat_body(stream=True)) as response:
            expect(response.status_code == 200, f"status {response.status_code}")
            kind = response.headers.get("content-type", "")
            expect(kind.startswith("text/event-stream"), f"content-type {kind}")
            for line in response.iter_lines():
                if first is None:
                    first = (time.monotonic() - started) * 1000
                if line.startswith("data: "):
                    events += 1
                    done = done or line == "data: [DONE]"
        expect(done, f"no [DONE] after {events} events")
        return f"200, first byte {first:.0f} ms, {events} events to [DONE]"

    def catalogue(self):
        response = self.http.get(f"{self.api}/api/v1/models", params={"limit": 5})
        expect(response.status_code == 200, f"status {response.status_code}")
        page = response.json()
        expect(len(page["data"]) > 0, "no models")
        return f"200, {len(page['data'])} of {page.get('total_count', '?')} models, first {page['data'][0]['id']}"

    def websocket(self):
        started = time.monotonic()
        with connect(self.ws, open_timeout=10) as socket:
            socket.send(json.dumps({"type": "inference_request", "id": "smoke",
                                    "data": self.chat_body()}))
            first = None
            messages = 0
            while True:
                message = json.loads(socket.recv(timeout=60))
                if message.get("type") == "heartbeat":
                    continue
                messages += 1
                if first is None:
                    first = (time.monotonic() - started) * 1000
                expect(message.get("type") != "error", f"error: {message}")
                if message.get("data", {}).get("finish_reason"):
                    break
        return f"{messages} messages, first {first:.0f} ms after connecting"

    def cors(self):
        response = self.http.request(
            "OPTIONS", f"{self.api}/api/v1/chat/completions",
            headers={"Origin": "https://smoke.example",
                     "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type"})
        expect(response.status_code in (200, 204), f"status {response.status_code}")
        allowed = response.headers.get("access-control-allow-origin")
        expect(allowed in ("*", "https://smoke.example"), f"allow-origin {allowed!r}")
        return f"{response.status_code}, allow-origin {allowed}"

    def error_shape(self):
        response = self.http.post(f"{self.api}/api/v1/chat/completions",
                                  json={"model": self.model, "messages": []})
        expect(response.status_code == 400, f"status {response.status_code}")
        error = response.json()["error"]
        expect(error["code"] == 400 and error["type"] == "validation",
               f"error {error}")
        expect(isinstance(error["message"], str), "no message")
        expect("x-request-id" in response.headers, "no x-request-id")
        return f"400 {error['type']}, field {error.get('details', {}).get('field')}"


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("api_url", help="the stack's ApiUrl (locally http://127.0.0.1:3000)")
    parser.add_argument("websocket_url",
                        help="the stack's WebSocketUrl (locally ws://127.0.0.1:3000/ws)")
    parser.add_argument("--model", default="openai/gpt-4o-mini")
    args = parser.parse_args()
    smoke = Smoke(args.api_url, args.websocket_url, args.model)
    smoke.check("health", smoke.health)
    smoke.check("chat", smoke.chat)
    smoke.check("rate headers", smoke.rate_headers)
    smoke.check("stream", smoke.stream)
    smoke.check("catalogue", smoke.catalogue)
    smoke.check("websocket", smoke.websocket)
    smoke.check("cors", smoke.cors)
    smoke.check("error shape", smoke.error_shape)
    print(f"smoke: {smoke.checks - smoke.failed} of {smoke.checks} checks passed", flush=True)
    sys.exit(smoke.failed)


if __name__ == "__main__":
    main()
