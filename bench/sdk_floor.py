"""The floor under `evals run`: the same chat completions through the official openai SDK alone, no evals code.

Run as its own process by bench/cli_startup.py (start-up included, as `evals run` is measured): imports the SDK,
sends N requests to $OPENAI_BASE_URL at the given concurrency on the same aiohttp transport, reads each
answer as plain JSON, and exits. What `evals run` takes beyond this is the harness's own.

    OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 .venv/bin/python bench/sdk_floor.py --n 500 --concurrency 50
"""

from __future__ import annotations

import argparse
import asyncio


async def main(n: int, concurrency: int, sdk: str = "openai") -> None:
    lanes = asyncio.Semaphore(concurrency)
    if sdk == "anthropic":  # the same calls through the anthropic SDK, to $ANTHROPIC_BASE_URL
        import anthropic

        aclient = anthropic.AsyncAnthropic(api_key="sk-floor", max_retries=0,
                                           http_client=anthropic.DefaultAioHttpClient())

        async def message(i: int) -> None:
            async with lanes:
                await aclient.post("/v1/messages", cast_to=object, body={
                    "model": "claude-haiku-4-5-20251001", "temperature": 0.0, "max_tokens": 512,
                    "system": "Answer with JSON.", "messages": [{"role": "user", "content": f"question {i}"}]})

        await asyncio.gather(*(message(i) for i in range(n)))
        await aclient.close()
        return
    import openai

    client = openai.AsyncOpenAI(api_key="sk-floor", max_retries=0, http_client=openai.DefaultAioHttpClient())

    async def one(i: int) -> None:
        async with lanes:
            await client.post("/chat/completions", cast_to=object, body={
                "model": "gpt-4o-mini", "temperature": 0.0, "max_completion_tokens": 512,
                "messages": [{"role": "system", "content": "Answer with JSON."},
                             {"role": "user", "content": f"question {i}"}]})

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--sdk", choices=["openai", "anthropic"], default="openai")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency, args.sdk))
