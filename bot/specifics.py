"""What kind of specific fact a question asks for, and whether an answer states one.

"Who is the CEO of the Linux Foundation?" shares most of its words with the entry about the
Linux Foundation, yet that entry names no person; "How much does membership cost?" is close
to the board entries, which give no amount. Such questions are on topic but the pack cannot
answer them, and they are the ones most often answered wrong. The classic check of question
answering catches them: the kind of answer the question expects (a person, an amount of
money, a count, a date, a future date, a duration, someone's exact words, the steps to
join) must be something the entry's answer contains; and "how many X" must be answered with
a number of X (:func:`counted_thing`, :func:`counted_things`), not of something else.

Both sides are read with a few patterns (English): :func:`asked_kinds` on the question,
:func:`stated_kinds` on an answer (once, when the index is built). The decision model takes
"asks for a kind the best entry never states" as one of its inputs, and such an entry is
never answered outright, only suggested (:mod:`bot.deciding`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

from bot.wordlist import is_english_word


class Kind(StrEnum):
    """A kind of specific fact."""

    PERSON = "person"
    MONEY = "money"
    COUNT = "count"
    DATE = "date"
    DURATION = "duration"
    QUOTE = "quote"
    EXACT_COUNT = "exact_count"
    #: The steps to take part: how to join, apply, become a member or maintainer.
    PROCESS = "process"
    #: When something still to come will happen (a release, the next member, a meeting).
    FUTURE_DATE = "future_date"
    #: The exact day something happened ("the exact date it was announced"): a month or a
    #: year does not answer it.
    DAY = "day"


_ROLES = (
    r"ceo|cto|cfo|coo|chair\w*|president|vp|director|head|leader|boss|founder|spokes\w+"
    r"|executive\s+director|general\s+manager|manager|secretary|treasurer|developer"
    r"|maintainer|representatives?|reps?|delegates?|exec|executives?|official|contact"
)
_PEOPLE = (
    r"person|people|exec|execs|executive|executives|individuals?|researchers?|engineers?"
    r"|representatives?|reps?|staff|employees?|developers?|maintainers?|officials?"
)
#: Words after "which" that make the question about something other than people.
_NOT_PEOPLE_HEAD = (
    r"(?:compan\w*|firms?|orgs?|organi[sz]ations?|members?|vendors?|sponsors?|have|has|are|is"
    r"|were|was|do|does|did|get|gets|got|will|would|can|could|send|sends|sent|changes?"
    r"|happens?|means?|about|for|of|to|in|on|at|with|from|by|should)"
)
#: Questions asking who someone is.
_ASKS_PERSON = re.compile(
    # "who is the CEO", "who's Google's representative on the board"
    rf"\bwho(?:'s|\s+is|\s+are|\s+was|\s+were|\s+will\s+be)?\s+(?:[\w']+\s+){{0,4}}?"
    rf"(?:{_ROLES})\b"
    r"|\bwho\s+(?:exactly\s+|actually\s+|currently\s+|now\s+)?"
    r"(?:chairs|will\s+chair|represents|will\s+represent)\b"
    # "which engineers", "what Google people"; not "which companies have representatives"
    rf"|\b(?:which|what)\s+(?:of\s+(?:the|their|its|our)\s+)?"
    rf"(?:(?!{_NOT_PEOPLE_HEAD}\b)[\w']+\s+(?:[\w']+\s+)?)?(?:{_PEOPLE})\b"
    rf"|\b(?:the|its|their)\s+(?:{_ROLES})\s+(?:of|at|for|from)\b"
    r"|\bby\s+name\b|\bnames?\s+of\b|\b(?:their|his|her|whose)\s+names?\b"
    r"|\bwhat(?:'s|\s+is|\s+are)\s+(?:the\s+|their\s+|his\s+|her\s+)?names?\b",
    re.IGNORECASE,
)
#: Questions asking for someone's exact words.
_ASKS_QUOTE = re.compile(
    r"\bwhat\s+(?:exactly\s+|precisely\s+)?(?:did|does)\s+(?:[\w']+\s+){1,6}say\b"
    r"|\bverbatim\b|\bword\s+for\s+word\b|\bexact\s+(?:words|wording|quote|text)\b"
    r"|\bquote\b",
    re.IGNORECASE,
)
_ASKS_MONEY = re.compile(
    r"\bhow\s+much\b(?!\s+(?:of|has|have|will|would|does\s+(?:this|that|it)\s+(?:change|matter"
    r"|affect)|engineering|headcount|effort|time|work|support|influence|control|say|power|input"
    r"|involvement|weight|sway)\b)|\b(?:cost|costs|price|prices|pricing|fee|fees|dues|salary|salaries|budget"
    r"|dollars?|usd|euros?|funding\s+amount)\b|[$€£]",
    re.IGNORECASE,
)
_ASKS_COUNT = re.compile(r"\bhow\s+many\b|\bnumber\s+of\b|\bcount\s+of\b", re.IGNORECASE)
#: An exact count: "exactly how many", "the precise number of".
_ASKS_EXACT_COUNT = re.compile(
    r"\b(?:exact(?:ly)?|precise(?:ly)?)\b(?:\W+\w+){0,3}?\W+(?:how\s+many|number|count)\b"
    r"|\bhow\s+many\b.*\b(?:exactly|precisely)\b",
    re.IGNORECASE,
)
_ASKS_DATE = re.compile(
    r"\bwhen\b|\b(?:what|which)\s+(?:year|date|day|month)\b|\bsince\s+when\b|\bdeadline\b"
    r"|\bwhat\s+time\b",
    re.IGNORECASE,
)
_ASKS_DURATION = re.compile(r"\bhow\s+long\b", re.IGNORECASE)
_ASKS_DAY = re.compile(
    r"\b(?:exact|precise|specific|actual)\s+(?:date|day)\b|\b(?:what|which)\s+day\b"
    r"|\bon\s+what\s+date\b|\bday\s+of\s+the\s+(?:month|week)\b",
    re.IGNORECASE,
)
#: "how can my company join", "how do I become a maintainer", "how to apply for a seat".
_ASKS_PROCESS = re.compile(
    r"\bhow\s+(?:can|could|do|does|would|should|might|to|r|are|is)\b(?:\s+[\w']+){0,4}?\s+"
    r"(?:join|joins|apply|applies|become|becomes|sign\s+up|get\s+involved|participate|enroll"
    r"|register|nominate|get\s+(?:a\s+)?(?:seat|spot|membership)|be\s+part)\b",
    re.IGNORECASE,
)
#: "when will PyTorch 2.0 be released", "when's the next conference", "when is the next
#: company expected to join".
_ASKS_FUTURE_DATE = re.compile(
    r"\bwhen(?:'s|\s+is|\s+are|\s+does|\s+do)?\b(?:\s+[\w'.]+){0,6}?\s+(?:will|going\s+to|gonna"
    r"|next|upcoming|planned|scheduled|expected|come\s+out|comes\s+out|be\s+released|ship)\b"
    r"|\b(?:will|going\s+to)\b[^?!]{0,60}\band\s+when\b"
    r"|\bwhat\s+(?:date|day|year|month)\s+will\b",
    re.IGNORECASE,
)
_STATES_PROCESS = re.compile(
    r"\b(?:apply|application|sign\s+up|register|contact|e-?mail|visit|fill\s+(?:in|out)|submit"
    r"|membership\s+(?:form|page|tiers?))\b",
    re.IGNORECASE,
)

_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|dozens?|"
    r"hundreds?|thousands?|millions?|billions?"
)
_STATES_NUMBER = re.compile(rf"\d|\b(?:{_NUMBER_WORDS})\b", re.IGNORECASE)
_STATES_MONEY = re.compile(
    r"[$€£]\s*\d|\b\d[\d,.]*\s*(?:dollars?|usd|euros?|eur|gbp|k|m|million|billion)\b"
    r"|\b(?:free|no\s+cost|no\s+fee|costs?\s+nothing)\b",
    re.IGNORECASE,
)
_MONTHS = r"january|february|march|april|may|june|july|august|september|october|november|december"
_DAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_STATES_DATE = re.compile(
    rf"\b(?:1[89]|20)\d\d\b|\b(?:{_MONTHS}|{_DAYS})\b|\b(?:today|tonight|yesterday|tomorrow)\b"
    r"|\b(?:this|next|last)\s+(?:week|weekend|month|year|quarter)\b|\b\d{1,2}(?:st|nd|rd|th)\b",
    re.IGNORECASE,
)
#: A day: "12 September", "September 12th", "2022-09-12", "on Monday", "yesterday".
_STATES_DAY = re.compile(
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b"
    rf"|\b(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?![\d,]\d)|\b\d{{4}}-\d\d-\d\d\b"
    rf"|\b(?:{_DAYS}|today|yesterday|tomorrow)\b",
    re.IGNORECASE,
)
#: A date still to come: "will ... in 2025", "next year", "later this year", "by the end of".
_STATES_FUTURE_DATE = re.compile(
    r"\b(?:will|expected\s+to|planned|scheduled|due)\b[^.]{0,60}?\b(?:in|by|on)\s+"
    rf"(?:(?:19|20)\d\d|(?:early|late|mid)[\s-]|the\s+end|(?:{_MONTHS}))"
    r"|\b(?:next|later\s+this)\s+(?:week|month|quarter|year)\b",
    re.IGNORECASE,
)
_STATES_DURATION = re.compile(
    rf"\b(?:\d+|{_NUMBER_WORDS}|a|an)\s+(?:\w+\s+)?(?:seconds?|minutes?|hours?|days?|weeks?"
    r"|months?|years?|decades?)\b|\bsince\s+(?:1[89]|20)\d\d\b",
    re.IGNORECASE,
)
_STATES_QUOTE = re.compile(r'"[^"]{12,}"|“[^”]{12,}”')
#: Two capitalized words, the second not an English word: "Mark Zuckerberg", not "Google
#: Cloud" or "Linux Foundation".
_NAME_PAIR = re.compile(r"\b([A-Z][a-z]+)\s+([A-Z][a-z]+)\b")


#: A count given exactly: a number before a plural noun ("six companies", "150 projects",
#: "six founding companies"), not hedged (:data:`_HEDGE`), not a date or a version.
_EXACT_NUMBER = re.compile(
    r"(?<![\w.,~])(?:(?!(?:1[89]|20)\d\d\b)\d{1,3}(?:,\d{3})*(?![\d.,]?\d)(?!\s*(?:\+|-?plus\b))"
    r"|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty)"
    rf"\s+(?:[a-z-]+\s+)?(?!(?:{_MONTHS})\b)[a-z]+s\b",
    re.IGNORECASE,
)
#: Words that make the number after them a rough one.
_HEDGE = re.compile(
    r"(?:more\s+than|over|about|around|nearly|almost|roughly|some|approximately|at\s+least"
    r"|up\s+to|under|fewer\s+than|less\s+than|~)\s*$",
    re.IGNORECASE,
)


def _states_exact_count(answer: str) -> bool:
    return any(not _HEDGE.search(answer[: m.start()]) for m in _EXACT_NUMBER.finditer(answer))


#: What asks for each kind, and what states it.
_ASKS: dict[Kind, re.Pattern[str]] = {
    Kind.PERSON: _ASKS_PERSON,
    Kind.MONEY: _ASKS_MONEY,
    Kind.COUNT: _ASKS_COUNT,
    Kind.DATE: _ASKS_DATE,
    Kind.DURATION: _ASKS_DURATION,
    Kind.QUOTE: _ASKS_QUOTE,
    Kind.EXACT_COUNT: _ASKS_EXACT_COUNT,
    Kind.PROCESS: _ASKS_PROCESS,
    Kind.FUTURE_DATE: _ASKS_FUTURE_DATE,
    Kind.DAY: _ASKS_DAY,
}
_STATES: dict[Kind, tuple[re.Pattern[str], ...]] = {
    Kind.MONEY: (_STATES_MONEY,),
    Kind.COUNT: (_STATES_NUMBER,),
    Kind.DATE: (_STATES_DATE,),
    Kind.DURATION: (_STATES_DURATION, _STATES_DATE),
    Kind.QUOTE: (_STATES_QUOTE,),
    Kind.PROCESS: (_STATES_PROCESS,),
    Kind.FUTURE_DATE: (_STATES_FUTURE_DATE,),
    Kind.DAY: (_STATES_DAY,),
}


#: "how many GitHub stars does it have": the words of the noun phrase after "how many"; in
#: "Of the 150,000 projects, how many are commercial products?", after the verb.
_HOW_MANY = re.compile(
    r"\bhow\s+many\s+(?:(?:are|were|is|was)\s+(?:(?:actually|really|now|still|the|of\s+them)"
    r"\s+)*)?([\w'-]+(?:\s+[\w'-]+){0,2})",
    re.IGNORECASE,
)
#: Words that end that noun phrase ("how many projects *have* been built").
_PHRASE_END_WORDS = """
    do does did are is was were have has had will would can could should of in on at to for
    from with there they we you i it that this these those he she get gets got work works use
    uses r u ur
"""
_PHRASE_END = frozenset(_PHRASE_END_WORDS.split())
#: A number and the words after it ("six founding companies", "hundreds of engineers").
_COUNTED = re.compile(
    rf"(?:\d[\d,.]*\+?|\b(?:{_NUMBER_WORDS})\b)(?:\s+of)?((?:\s+[A-Za-z-]+){{1,3}})",
    re.IGNORECASE,
)


def counted_thing(question: str) -> str | None:
    """What a "how many" question counts: the last word of the noun phrase after it
    ("stars" in "how many GitHub stars does PyTorch have"), or None."""
    found = _HOW_MANY.search(question)
    if found is None:
        return None
    head = None
    for word in found.group(1).split():
        if word.lower() in _PHRASE_END:
            break
        head = word
    return head


def counted_things(answer: str) -> tuple[str, ...]:
    """What ``answer`` gives numbers of: the first plural noun after each number ("six
    founding companies" -> "companies", "hundreds of engineers" -> "engineers")."""
    found = []
    for match in _COUNTED.finditer(answer):
        plural = next(
            (w for w in match.group(1).split() if w.lower().endswith("s") and len(w) > 3), None
        )
        if plural is not None:
            found.append(plural)
    return tuple(found)


#: Where a board, its members or a seat are named after a membership phrase.
_MEMBERSHIP_END = (
    r"(?:[\w'-]+\s+){0,4}?(?:board|members?|companies|founders|founding|seats?|body|directors"
    r"|committee|lineup|roster)\b"
)
_MEMBERSHIP_LINK = (
    r"(?:also\s+|still\s+|actually\s+|even\s+|really\s+|not\s+|now\s+)?"
    r"(?:on|in|part\s+of|one\s+of|among|a\s+member\s+of|members?\s+of|represented\s+on"
    r"|left\s+out\s+of|included\s+in|seated\s+on"
    r"|(?:got|has|have|hold|holds|get|gets)\s+(?:a|no|any))\s+"
)
#: Words that start a membership phrase without naming anyone ("Who is on the board?").
_NOT_A_NAME = (
    r"so|and|but|who|whom|what|which|where|when|why|how|whos|who's|anyone|anybody|someone"
    r"|everyone|nobody|there|it|this|that|they|he|she|we|you|i|the|a|an|any|some|all|more"
)
_AUXILIARY = r"(?:is|are|isn't|aren't|isnt|arent|was|were|does|did|do|has|have)"
_NAME_SLOT = r"([A-Za-z][\w&.-]*(?:\s+[A-Z][\w&.-]*){0,2})"
#: "Is Apple on the board?", "does IBM have a seat", "Intel is one of the founding members",
#: "IBM on the board?": the name whose membership is asked about.
_MEMBERSHIP = re.compile(
    rf"\b(?i:{_AUXILIARY})\s+(?!(?i:{_NOT_A_NAME})\b){_NAME_SLOT}\s+(?i:{_MEMBERSHIP_LINK}{_MEMBERSHIP_END})"
    r"|(?:^|[,.!?;:]\s*|\b(?i:heard|think|thought|believe|guess|so|and|but|about)\s+)"
    rf"(?!(?i:{_AUXILIARY}|{_NOT_A_NAME})\b){_NAME_SLOT}\s+"
    rf"(?i:(?:is\s+|isn't\s+|isnt\s+|was\s+|has\s+|hasn't\s+)?{_MEMBERSHIP_LINK}"
    rf"{_MEMBERSHIP_END})",
)


def member_named(question: str) -> str | None:
    """The name in a question about whether someone is a member ("Is Apple on the board?",
    "IBM on the board?", "does Intel have a seat"), or None.

    A list of members answers such a question whichever name it asks about, so the matcher
    does not count the name against the match when the pack never mentions it.
    """
    found = _MEMBERSHIP.search(question.replace("’", "'"))
    if found is None:
        return None
    return found.group(1) or found.group(2)


def asked_kinds(question: str) -> frozenset[Kind]:
    """The kinds of specific fact ``question`` asks for (none for most questions)."""
    text = question.replace("’", "'")
    return frozenset(kind for kind, pattern in _ASKS.items() if pattern.search(text))


@lru_cache(maxsize=4096)
def stated_kinds(answer: str) -> frozenset[Kind]:
    """The kinds of specific fact ``answer`` states."""
    kinds = {
        kind
        for kind, patterns in _STATES.items()
        if any(pattern.search(answer) for pattern in patterns)
    }
    if any(not is_english_word(last.lower()) for _, last in _NAME_PAIR.findall(answer)):
        kinds.add(Kind.PERSON)
    if _states_exact_count(answer):
        kinds.add(Kind.EXACT_COUNT)
    return frozenset(kinds)
