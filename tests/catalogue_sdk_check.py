"""The official OpenRouter and OpenAI Python SDKs' model calls against llm-proxy, client
code unchanged but for the base URL. Usage: catalogue_sdk_check.py BASE_URL EXPECTED_JSON,
where EXPECTED_JSON holds what the test computed from the catalogue the mock serves.
Prints one line per check and exits non-zero on the first failure."""

import json
import sys

from openai import OpenAI
from openrouter import OpenRouter

base_url, expected = sys.argv[1], json.loads(sys.argv[2])

router = OpenRouter(api_key="not-needed", server_url=base_url)

# models.list() with its defaults (limit=500, offset=0): one page, clamped to 100.
page = router.models.list()
assert page.result.total_count == expected["total"], page.result.total_count
ids = [m.id for m in page.result.data]
assert ids == expected["first_100"], ids[:5]
assert page.result.links.next is not None
print("openrouter models.list():", len(ids), "of", page.result.total_count)

# With a filter, the count the catalogue gives for it.
tools = router.models.list(supported_parameters="tools", limit=100)
assert tools.result.total_count == expected["tools"], tools.result.total_count
assert all("tools" in m.supported_parameters for m in tools.result.data)
images = router.models.list(input_modalities="image", limit=100)
assert images.result.total_count == expected["image_input"], images.result.total_count
print("openrouter models.list(filters):", tools.result.total_count, images.result.total_count)

count = router.models.count()
assert count.data.count == expected["total"], count
print("openrouter models.count():", count.data.count)

model = router.models.get(author="openai", slug="gpt-4o")
assert model.data.id == "openai/gpt-4o", model.data.id
assert isinstance(model.data.supported_parameters, list)
print("openrouter models.get():", model.data.id, model.data.pricing.prompt)

endpoints = router.endpoints.list(author="openai", slug="gpt-4o")
assert endpoints.data.id == "openai/gpt-4o"
assert endpoints.data.endpoints, endpoints
print("openrouter endpoints.list():", len(endpoints.data.endpoints))

openai = OpenAI(base_url=base_url, api_key="not-needed", max_retries=0)
listed = [m.id for m in openai.models.list()]
assert listed == expected["first_100"][:50], listed[:5]
print("openai models.list():", len(listed))
retrieved = openai.models.retrieve("openai/gpt-4o")
assert (retrieved.id, retrieved.object, retrieved.owned_by) == ("openai/gpt-4o", "model", "openai"), retrieved
print("openai models.retrieve():", retrieved.id, retrieved.owned_by)
print("all catalogue SDK checks passed")
