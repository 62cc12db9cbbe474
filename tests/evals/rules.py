"""The answers of the rule-based provider: each follows the request's messages, so a changed
prompt changes the answer, the way a real model's would (only deterministically).

A rule is picked by what the system message says:
- "rubric" (a judge): scores 5 when the answer holds every "quoted phrase" of the rubric
  (the paragraph after `Rubric:`),
  1 when it holds none, 3 in between, 4 for a rubric without quotes; answers JSON.
- "exactly one label" (a classifier): the labels are the system lines `label: words`;
  each label's keywords are the 5-letter stems of its words of 5+ letters that no other
  label uses; the label whose keywords the user's text hits most wins (the first on a
  tie; `other`, else the first label, when none is hit). User lines holding ` | ` are
  metadata (`Channel: email | Plan: team`) and are not read.
- "JSON object": fields of an invoice found by patterns, as a JSON object.
- "bullet points": a ticket summary, as many bullets as the prompt allows, `Next step:`.
- "Help Center assistant": the best-matching `<article>`'s first sentence and menu paths, cited.
- "support agent": a short reply to the customer, signed with the agent's name.
- "taglines": a numbered list that avoids the words the prompt forbids.
Anything else is echoed.
"""

from __future__ import annotations

import json
import re
from typing import Any

Messages = list[dict[str, Any]]


def answer(messages: Messages) -> str:
    """The provider's answer to a chat request."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    user = "\n".join(m["content"] for m in messages if m["role"] == "user")
    if "rubric" in system.lower():
        return judge(user)
    if "exactly one label" in system:
        return classify(system, user)
    if "JSON object" in system:
        return extract(system, user)
    if "bullet points" in system:
        return summarize(system, user)
    if "Help Center assistant" in system:
        return help_center(system, user)
    if "support agent" in system:
        return reply(system, user)
    if "taglines" in system + user:
        return taglines(user)
    last = messages[-1]["content"] if messages else ""
    return f"echo: {last}"


def count_tokens(text: str) -> int:
    """The provider's usage count: words and punctuation marks (a stand-in tokenizer)."""
    return len(re.findall(r"\w+|[^\w\s]", text))


# -- judge ------------------------------------------------------------------------------------


def judge(user: str) -> str:
    found = re.search(r"Rubric:\s*(.*?)(?:\n\s*\n|$)", user, re.S)
    rubric = found.group(1) if found else ""
    rest = user.partition("Answer to grade:")[2] or user
    graded = re.search(r"<answer>(.*)</answer>", rest, re.S)
    text = (graded.group(1) if graded else rest).lower()
    wanted = re.findall(r'"([^"]+)"', rubric)
    if not wanted:
        score, why = 4, "no checkable phrase in the rubric"
    else:
        found = [w for w in wanted if w.lower() in text]
        score = 5 if len(found) == len(wanted) else 1 if not found else 3
        missing = [w for w in wanted if w not in found]
        why = "mentions everything asked" if not missing else f"does not mention {missing}"
    return json.dumps({"score": score, "reason": f"The answer {why}."})


# -- classifier -------------------------------------------------------------------------------

_LABEL = re.compile(r"^([a-z][a-z_]*): (.+)$", re.M)


def _stems(text: str) -> list[str]:
    return [w[:5] for w in re.findall(r"[a-z][a-z-]+", text.lower()) if len(w) >= 5]


def classify(system: str, user: str) -> str:
    labels = {name: set(_stems(words)) for name, words in _LABEL.findall(system)}
    if not labels:
        return "other"
    shared = {
        s
        for name, stems in labels.items()
        for s in stems
        if any(s in others for other, others in labels.items() if other != name)
    }
    text = "\n".join(line for line in user.splitlines() if " | " not in line)
    words = _stems(text)
    hits = {name: sum(w in stems - shared for w in words) for name, stems in labels.items()}
    best = max(hits.values())
    if best == 0:
        return "other" if "other" in labels else next(iter(labels))
    return next(name for name, n in hits.items() if n == best)


# -- invoice extraction -----------------------------------------------------------------------


def _number(raw: str) -> float:
    raw = raw.strip()
    if "," in raw and "." in raw:
        decimal = "," if raw.rfind(",") > raw.rfind(".") else "."
        raw = raw.replace("." if decimal == "," else ",", "").replace(",", ".")
    elif "," in raw:
        raw = raw.replace(",", ".") if len(raw.rsplit(",", 1)[1]) == 2 else raw.replace(",", "")
    return float(raw)


def _date(raw: str | None) -> str | None:
    if raw is None:
        return None
    found = re.match(r"(\d{1,2})[./](\d{1,2})[./](\d{4})", raw)
    return f"{found.group(3)}-{int(found.group(2)):02d}-{int(found.group(1)):02d}" if found else raw


def _find(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text, re.I | re.M)
    return found.group(1).strip() if found else None


def extract(system: str, user: str) -> str:
    default = _find(r'use "([A-Z]{3})"', system) or "USD"
    lines = [line for line in user.splitlines() if line.strip() and not line.startswith("File:")]
    total = re.search(r"Total(?: due)?\s+([\d.,]+)\s*([A-Z]{3})?", user)
    warnings = []
    currency = total.group(2) if total and total.group(2) else None
    if currency is None:
        currency = default
        warnings.append(f"no currency printed; used {default}")
    items = [
        {
            "description": row[1].strip(),
            "quantity": _number(row[2]),
            "unit_price": _number(row[3]),
            "amount": _number(row[4]),
        }
        for row in re.findall(
            r"^\s*(\d+)\s+(.+?)\s{2,}([\d.,]+)\s+([\d.,]+)\s+([\d.,]+)\s*$", user, re.M
        )
    ]
    receipt = re.search(r"\breceipt\b", user, re.I) is not None
    if receipt:
        warnings.append("this looks like a receipt, not an invoice")
    subtotal = _find(r"(?:Net total|Subtotal)\s+([\d.,]+)", user)
    data = {
        "invoice_number": _find(
            r"(?:Invoice|Receipt) (?:no\.?|number|#):?\s*([A-Z0-9][\w-]*)", user
        ),
        "invoice_date": _date(_find(r"(?:Invoice )?date:\s*(\S+)", user)),
        "due_date": _date(_find(r"Due date:\s*(\S+)", user)),
        "purchase_order": _find(r"PO number:\s*(\S+)", user),
        "supplier": {
            "name": lines[0].strip() if lines else None,
            "address": None,
            "tax_id": _find(r"VAT ID:\s*(\S+)", user),
        },
        "bill_to": {"name": _find(r"Bill to:\s*\n\s*(.+)", user), "address": None},
        "currency": currency,
        "line_items": items,
        "subtotal": _number(subtotal) if subtotal else sum(i["amount"] for i in items),
        "tax_total": 0.0,
        "total": _number(total.group(1)) if total else None,
        "payment": {
            "iban": _find(r"IBAN:\s*([A-Z]{2}[\d ]+?)\s{2,}", user),
            "bic": _find(r"BIC:\s*(\w+)", user),
            "terms": _find(r"Payment terms:\s*([^.]+)", user),
        },
        "confidence": "low" if receipt else "high",
        "warnings": warnings,
    }
    return json.dumps(data)


# -- ticket summary ---------------------------------------------------------------------------


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    found = re.match(r"(.+?[.!?])(\s|$)", text)
    return found.group(1) if found else text


def summarize(system: str, user: str) -> str:
    limit = int(_find(r"at most (\d+) short bullet points", system) or 5)
    ticket = _find(r"^(Ticket #\d+: .+)$", user) or "Ticket"
    customer = _find(r"^Customer: (.+)$", user) or "unknown customer"
    bullets = [f"- {ticket}", f"- Customer: {customer}"]
    if "team lead" in system:
        bullets.insert(0, f"- Impact: {customer} is waiting on an answer")
    comments = re.findall(r"^--- Comment \d+ by (.+?) \[(\w+)\], .+\n(.+)$", user, re.M)
    for author, role, body in comments:
        label = " (internal)" if role == "internal" else ""
        bullets.append(f"- {author}{label}: {_sentence(body)}")
    body = "\n".join(bullets[:limit])
    return f"{body}\nNext step: reply to the customer with an update."


# -- help-center answer -----------------------------------------------------------------------


def help_center(system: str, user: str) -> str:
    articles = re.findall(
        r'<article id="(\d+)">\s*Title: ([^\n]+)\s*URL: ([^\n]+)\s*(.+?)</article>', system, re.S
    )
    if not articles:
        return "I don't know the answer to that; please contact support from the in-app chat."
    question = set(_stems(user))
    number, title, url, text = max(articles, key=lambda a: len(question & set(_stems(a[3]))))
    sentences = re.findall(r"[^.!?]+[.!?]", " ".join(text.split()))
    picked = [sentences[0].strip()] + [s.strip() for s in sentences[1:] if ">" in s][:2]
    body = " ".join(f"{s} [{number}]" for s in picked)
    return f"{body}\n\nSources:\n[{number}] {title.strip()} - {url.strip()}"


# -- support reply ----------------------------------------------------------------------------


def reply(system: str, user: str) -> str:
    agent = _find(r"^You are (.+?), a support agent", system) or "Support"
    customer = _find(r"^From: (.+?) \(", user) or "there"
    first = customer.split()[0]
    parts = [f"Hi {first}, thanks for getting in touch."]
    if "frustration" in system and re.search(r"frustrat|again|second", user, re.I):
        parts.append("I'm sorry this has happened again; I understand how frustrating it is.")
    if re.search(r"charge|refund|invoice", user, re.I):
        parts.append(
            "I'm escalating this to our billing team, who will reply within one business day."
        )
    else:
        parts.append("I'm looking into this now and will update you today.")
    if re.search(r"priority support\s+channel", system):
        parts.append("You can also reach us any time on your priority support channel.")
    return " ".join(parts) + f"\n\n{agent}"


# -- taglines ---------------------------------------------------------------------------------


def taglines(user: str) -> str:
    count = int(_find(r"Write (\d+) taglines", user) or 3)
    limit = int(_find(r"at most (\d+) words", user) or 8)
    product = _find(r"taglines for (.+?)\.\s*$", user) or "it"
    avoid = {
        w.strip().lower() for w in (_find(r"Do not use these words: (.+)\.", user) or "").split(",")
    }
    sources = re.findall(r"^- (.+)$", user, re.M) or [product]
    lines = []
    for i in range(count):
        words = [w for w in sources[i % len(sources)].split() if w.lower().strip(",.") not in avoid]
        lines.append(f"{i + 1}. {' '.join(words[:limit])}")
    return "\n".join(lines) + "\n\nTest 1 first: it is the most concrete."
