"""The official openai SDK against the protoserve bridge (start it with `make serve`)."""

from openai import OpenAI

client = OpenAI(base_url="http://localhost:8000/v1", api_key="unused")

print([m.id for m in client.models.list().data])

reply = client.chat.completions.create(
    model="demo", messages=[{"role": "user", "content": "Hello!"}], max_tokens=8, temperature=0
)
print(reply.choices[0].message.content, reply.usage)

for chunk in client.completions.create(
    model="demo", prompt="The lighthouse keeper", max_tokens=8, stream=True, seed=1
):
    print(chunk.choices[0].text, end="|", flush=True)
print()
