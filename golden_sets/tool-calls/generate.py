#!/usr/bin/env python3
"""Generate the synthetic tool-calls set: golden.jsonl (50) and train.jsonl (400) beside this file.

A customer writes to the support assistant of a made-up outdoor shop; the assistant either calls one of five
functions (tools.json: look up, refund, cancel or re-address an order, escalate to a person), several of them
at once, or answers in words from the shop's policy. Some conversations are multi-turn: the customer gives the
order number only when asked, or a lookup's result decides what comes next. Each example is built from the
facts first (intent, order number, reason, address), and the reference call is those facts, so it is right by
construction; check_example() also confirms that each argument can be read back from the conversation.
Standard library only; the same --seed gives byte-identical files.

    python golden_sets/tool-calls/generate.py [--seed 20261207] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

N_GOLDEN, N_TRAIN = 50, 400
# intent -> share of examples (golden counts: 50 examples)
PLAN = {"lookup": 8, "refund": 9, "cancel": 5, "address": 6, "escalate": 6, "several": 5, "policy": 6,
        "after_lookup": 5}
REASONS = {  # refund reason -> what customers write
    "damaged": ["it arrived broken", "the zip is torn", "it came damaged",
                "the box was crushed and the {item} is cracked"],
    "not_received": ["it never arrived", "I never got it", "tracking says delivered but nothing came",
                     "it has been three weeks and still nothing"],
    "wrong_item": ["you sent the wrong size", "I got a different {item}", "this is not what I ordered",
                   "the colour is wrong"],
    "changed_mind": ["I changed my mind", "I don't need it anymore", "I found one cheaper", "it doesn't suit me"],
}
ITEMS = ["tent", "sleeping bag", "rain jacket", "headlamp", "trekking poles", "backpack", "camping stove",
         "water filter", "hiking boots", "fleece"]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hugo", "Ines", "Jonas", "Kai", "Lena", "Mo", "Nia"]
STREETS = ["12 Harbour Road", "7 Linden Street", "301 Pine Avenue", "45 Mill Lane", "88 Station Road",
           "19 Kastanienallee", "5 Rue des Lilas", "240 Queen Street West", "3 Birch Close", "61 Elm Street"]
PLACES = {  # country -> (city, postal code) pairs
    "US": [("Denver", "80202"), ("Portland", "97205"), ("Austin", "78701")],
    "GB": [("Leeds", "LS1 4DY"), ("Bristol", "BS1 5TR")],
    "DE": [("Berlin", "10115"), ("Köln", "50667")],
    "FR": [("Lyon", "69002"), ("Paris", "75002")],
    "CA": [("Toronto", "M5V 2T6"), ("Halifax", "B3J 1S9")],
}
COUNTRY_NAMES = {"US": ["the US", "USA", "United States"], "GB": ["UK", "the United Kingdom", "England"],
                 "DE": ["Germany"], "FR": ["France"], "CA": ["Canada"]}
ESCALATIONS = {  # (topic, priority) -> what customers write
    ("legal", "urgent"): ["I will be contacting my lawyer about order {o}", "this is going to small claims court"],
    ("billing", "urgent"): ["you charged my card three times for {o}!", "I was billed twice for order {o}"],
    ("complaint", "normal"): ["your courier was rude and left {o} in the rain, I want to speak to a manager",
                              "I want to make a formal complaint about how order {o} was handled"],
    ("technical", "normal"): ["your website keeps logging me out when I pay", "the app crashes when I open order {o}"],
}
POLICY = [  # question forms -> the answer in words (nothing to call)
    (["What is your return window?", "how long do I have to return something?", "Can I still return an item "
      "after a month?"], "You can return unused items within 30 days of delivery for a full refund."),
    (["Do you ship to Australia?", "which countries do you deliver to?"],
     "We ship to the US, Canada, the UK, Germany and France."),
    (["How much is shipping?", "is delivery free?"], "Shipping is free on orders over $50; otherwise it is $5.95."),
    (["Do you price match?", "will you match a cheaper price?"], "We don't price match, sorry."),
    (["thanks, that's all!", "Great, thank you so much", "ok cheers"], "You're welcome! Have a great day."),
]
GREETINGS = ["", "Hi, ", "Hello! ", "hey ", "Good morning, ", "Hi there. "]
SIGN_OFFS = ["", " Thanks.", " Thank you!", " thx", f" - {{name}}"]
SYSTEM = ("You are the support assistant of Northwind Outfitters, an outdoor gear shop. Use the functions to act "
          "on orders; answer questions about policy in words.")


def order_id(rng: random.Random) -> str:
    return f"NW-{rng.randint(100000, 999999)}"


def written(rng: random.Random, oid: str) -> str:
    """An order number as a customer types it: usually as printed, sometimes lower case or with a '#'."""
    return rng.choice([oid, oid, oid, oid.lower(), f"#{oid}", oid.replace("-", " ")])


def say(rng: random.Random, text: str) -> str:
    sign = rng.choice(SIGN_OFFS).format(name=rng.choice(NAMES))
    body = rng.choice(GREETINGS) + text
    return body[0].upper() + body[1:] + sign if rng.random() < 0.8 else body + sign


def call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


def assistant_calls(calls: list[dict], ids: list[str]) -> dict:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
        for c, i in zip(calls, ids)]}


def lookup(rng):
    oid = order_id(rng)
    if rng.random() < 0.3:  # the order number only when asked: two turns
        turns = [{"role": "user", "content": say(rng, rng.choice(["where is my package?", "has my order shipped?",
                                                                  "my parcel is late"]))},
                 {"role": "assistant", "content": "Let me check. What is your order number?"},
                 {"role": "user", "content": rng.choice(["{o}", "it's {o}", "order {o}"]).format(o=written(rng, oid))}]
        return turns, call("lookup_order", order_id=oid)
    text = rng.choice(["where is my order {o}?", "Can you check the status of {o}", "has {o} shipped yet?",
                       "any update on order {o}? It's been a while", "I'd like to track {o} please"])
    return [{"role": "user", "content": say(rng, text.format(o=written(rng, oid)))}], call("lookup_order", order_id=oid)


def refund(rng):
    oid, reason, item = order_id(rng), rng.choice(sorted(REASONS)), rng.choice(ITEMS)
    why = rng.choice(REASONS[reason]).format(item=item)
    arguments = {"order_id": oid, "reason": reason}
    partial = rng.random() < 0.3
    if partial:
        amount = rng.choice([12.5, 19.99, 25.0, 34.95, 8.0])
        arguments["amount"] = amount
        asks = [f"please refund ${amount:.2f} of order {{o}}, {why}", f"{why}, so I'd like ${amount:.2f} back on {{o}}"]
        unnamed = [f"please refund ${amount:.2f} of my order, {why}", f"{why}, so I'd like ${amount:.2f} back"]
    else:
        asks = [f"I want a refund for {{o}}, {why}", f"{why} - order {{o}}. Refund please",
                f"Refund order {{o}} please. {why}"]
        unnamed = [f"I want a refund, {why}", f"{why}. Refund please", f"can I get my money back? {why}"]
    if rng.random() < 0.45:  # the order number only when asked: two turns
        turns = [{"role": "user", "content": say(rng, rng.choice(unnamed))},
                 {"role": "assistant", "content": "I'm sorry about that. What is the order number?"},
                 {"role": "user", "content": rng.choice(["it's {o}", "{o}", "Order number {o}"]).format(
                     o=written(rng, oid))}]
    else:
        turns = [{"role": "user", "content": say(rng, rng.choice(asks).format(o=written(rng, oid)))}]
    return turns, call("refund_order", **arguments)


def cancel(rng):
    oid = order_id(rng)
    text = rng.choice(["please cancel {o}", "I ordered by mistake, can you cancel order {o}?",
                       "cancel my order {o} before it ships", "I need to cancel {o}, sorry"])
    return [{"role": "user", "content": say(rng, text.format(o=written(rng, oid)))}], call("cancel_order", order_id=oid)


def address(rng):
    oid, country = order_id(rng), rng.choice(sorted(PLACES))
    city, postal = rng.choice(PLACES[country])
    street = rng.choice(STREETS)
    where = f"{street}, {city} {postal}, {rng.choice(COUNTRY_NAMES[country])}"
    text = rng.choice(["I moved! Please send {o} to {w}", "can you change the delivery address of {o} to {w}?",
                       "Wrong address on order {o}. The right one is {w}"])
    reference = call("change_address", order_id=oid, street=street, city=city, postal_code=postal, country=country)
    return [{"role": "user", "content": say(rng, text.format(o=written(rng, oid), w=where))}], reference


def escalate(rng):
    (topic, priority) = rng.choice(sorted(ESCALATIONS))
    oid = order_id(rng)
    text = rng.choice(ESCALATIONS[(topic, priority)]).format(o=written(rng, oid))
    return [{"role": "user", "content": say(rng, text)}], call("escalate_to_human", topic=topic, priority=priority)


def several(rng):
    a, b = order_id(rng), order_id(rng)
    kind = rng.choice(["two_lookups", "cancel_and_lookup", "two_cancels"])
    if kind == "two_lookups":
        text, calls = "where are my orders {a} and {b}?", [call("lookup_order", order_id=a), call("lookup_order",
                                                                                                  order_id=b)]
    elif kind == "cancel_and_lookup":
        text, calls = "please cancel {a}, and tell me where {b} is", [call("cancel_order", order_id=a),
                                                                      call("lookup_order", order_id=b)]
    else:
        text, calls = "cancel both {a} and {b} please", [call("cancel_order", order_id=a),
                                                         call("cancel_order", order_id=b)]
    return [{"role": "user", "content": say(rng, text.format(a=written(rng, a), b=written(rng, b)))}], calls


def policy(rng):
    questions, answer = rng.choice(POLICY)
    question = rng.choice(questions)
    text = question if answer.startswith("You're welcome") else say(rng, question)  # thanks needs no greeting
    return [{"role": "user", "content": text}], answer


def after_lookup(rng):
    """A lookup already made: its result decides the next step (an answer in words, or a refund)."""
    oid = order_id(rng)
    lost = rng.random() < 0.5
    first = rng.choice(["where is {o}? If it's lost I want my money back", "status of {o}? refund me if it's lost"]
                       if lost else ["where is {o}?", "did {o} arrive?"])
    result = ({"order_id": oid, "status": "lost_in_transit", "carrier": "UPS"} if lost else
              {"order_id": oid, "status": "delivered", "delivered_on": f"2026-11-{rng.randint(10, 28)}"})
    call_id = f"call_{rng.randint(1000, 9999)}"
    turns = [{"role": "user", "content": say(rng, first.format(o=written(rng, oid)))},
             assistant_calls([call("lookup_order", order_id=oid)], [call_id]),
             {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}]
    if lost:
        return turns, call("refund_order", order_id=oid, reason="not_received")
    return turns, f"Your order {oid} was delivered on {result['delivered_on']}."


MAKE = {"lookup": lookup, "refund": refund, "cancel": cancel, "address": address, "escalate": escalate,
        "several": several, "policy": policy, "after_lookup": after_lookup}


def text_of(messages: list[dict]) -> str:
    return " ".join(json.dumps(m, sort_keys=True) for m in messages)


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def check_example(messages: list[dict], reference, tools: dict[str, dict]) -> None:
    """Every reference argument can be read from the conversation; every call follows its function's schema."""
    said = normalise(text_of(messages)).replace("\\u00f6", "ö")
    for c in reference if isinstance(reference, list) else [reference] if isinstance(reference, dict) else []:
        schema = tools[c["name"]]["parameters"]
        assert set(schema["required"]) <= set(c["arguments"]) <= set(schema["properties"]), c
        for key, value in c["arguments"].items():
            allowed = schema["properties"][key].get("enum")
            assert allowed is None or value in allowed, (key, value)
            if key == "order_id":
                digits = value.removeprefix("NW-")
                assert digits in said, (value, said)
                assert re.fullmatch(schema["properties"][key]["pattern"], value)
            elif key in ("street", "city", "postal_code"):
                assert normalise(value) in said, (key, value)
            elif key == "amount":
                assert f"{value:.2f}" in said


def build_split(rng: random.Random, n: int, prefix: str, width: int, exclude: set[str], tools: dict) -> list[dict]:
    """n examples in PLAN's shares, shuffled; none whose conversation is in `exclude` or already made."""
    counts = {k: round(v * n / N_GOLDEN) for k, v in PLAN.items()}
    counts["lookup"] += n - sum(counts.values())
    plan = [k for k, v in counts.items() for _ in range(v)]
    rng.shuffle(plan)
    rows, seen = [], set(exclude)
    for number, intent in enumerate(plan, start=1):
        while True:
            messages, reference = MAKE[intent](rng)
            key = normalise(text_of(messages))
            if key not in seen:
                break
        check_example(messages, reference, tools)
        seen.add(key)
        rows.append({"id": f"{prefix}{number:0{width}d}", "intent": intent,
                     "turns": sum(m["role"] != "tool" for m in messages), "messages": messages,
                     "reference": reference})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    tools = {t["function"]["name"]: t["function"] for t in json.loads((here / "tools.json").read_text())}
    golden = build_split(random.Random(f"{args.seed}:golden"), N_GOLDEN, "tc-g-", 3, set(), tools)
    golden_texts = {normalise(text_of(r["messages"])) for r in golden}
    train = build_split(random.Random(f"{args.seed}:train"), N_TRAIN, "tc-t-", 4, golden_texts, tools)
    assert not golden_texts & {normalise(text_of(r["messages"])) for r in train}, "a golden conversation leaked"
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "golden.jsonl", golden)
    write_jsonl(args.out / "train.jsonl", train)
    for name, rows in (("golden", golden), ("train", train)):
        intents = Counter(r["intent"] for r in rows)
        multi = sum(r["turns"] > 1 for r in rows)
        calls = Counter(len(r["reference"]) if isinstance(r["reference"], list) else
                        1 if isinstance(r["reference"], dict) else 0 for r in rows)
        print(f"{name}: {len(rows)} examples; " + ", ".join(f"{k} {intents[k]}" for k in PLAN)
              + f"; multi-turn {multi}; calls expected " + ", ".join(f"{k}: {v}" for k, v in sorted(calls.items())))


if __name__ == "__main__":
    main()
