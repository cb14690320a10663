"""Labelled phrasings for the reasoning-elicitation classifier, built from a small grammar.

Positives ask the model to expose or articulate its reasoning (step by step, chain
of thought, show all work, rubric grading with justification, thinking budgets,
answer-plus-rationale formats). Negatives are ordinary requests, format
instructions and near misses that mention steps or explanations without asking
for the model's reasoning ("a step-by-step recipe", "explain what X is").

Components are split into a training part and a held-out part, so the held-out
set contains verbs, objects and whole patterns the classifier never saw.

>>> train, test = phrasings(seed=0)
>>> len(train) > 500 and len(test) > 100
True
>>> sum(y for _, y in test) > 0 and sum(1 - y for _, y in test) > 0
True
"""

from __future__ import annotations

import random

TASKS = (
    "A train leaves at 3 pm travelling 80 km/h; when does it cover 200 km?",
    "Write a function that merges two sorted lists.",
    "Is 391 a prime number?",
    "What is the capital of Australia?",
    "How should a small bakery price a new cake?",
    "Find the derivative of x^3 sin(x).",
    "Why did the Roman Republic fall?",
    "Sort these numbers: 5, 2, 9, 1.",
    "Which is heavier, a kilo of feathers or a kilo of steel?",
    "Translate 'good morning' into Spanish.",
    "Summarize the causes of inflation.",
    "A shop sells 3 pens for $4. How much do 12 pens cost?",
    "Refactor this loop into a list comprehension: for x in xs: out.append(x * 2)",
    "What does the HTTP 418 status mean?",
    "Plan a three-day trip to Kyoto.",
    "Should I use Postgres or MongoDB for an inventory app?",
)

# (training part, held-out part)
VERBS = (
    ("explain", "show", "write out", "walk me through", "lay out", "describe", "detail", "present"),
    ("articulate", "spell out", "narrate", "document"),
)
OBJECTS = (
    ("your reasoning", "your full reasoning", "your chain of thought", "your thought process",
     "every intermediate step", "all of your work", "the steps you took", "how you reached the answer",
     "your internal reasoning", "your rationale"),
    ("your scratchpad", "the logic behind each step", "each inference you make", "your working"),
)
MODIFIERS = (
    ("step by step", "in detail", "before giving the final answer", "explicitly", "in full", ""),
    ("one step at a time", "without skipping anything", "as you go"),
)
STANDALONE = (
    ("Let's think step by step.", "Think carefully and reason it out before you answer.",
     "Reason step by step, then give the final answer.", "Use a thinking budget of {n} tokens.",
     "Think for at least {n} tokens before answering.", "Show all your work.",
     "Respond in JSON with keys answer and rationale, where rationale explains every step.",
     "Grade the answer below with a rubric (accuracy, clarity, completeness) and justify each score.",
     "Before answering, write down your complete chain of thought.", "Think aloud as you solve this.",
     "Include your full reasoning trace in the reply.", "Maximize reasoning effort and keep the trace."),
    ("Think out loud the whole way through.", "Set reasoning effort to maximum and expose the trace.",
     "Score this response against each criterion and explain the reasoning behind every score.",
     "Give the final answer plus a detailed derivation of how you got there."),
)
NEGATIVE_INSTRUCTIONS = (
    ("Answer briefly.", "Reply in French.", "Respond only with the final number.", "Use bullet points.",
     "Format the answer as a table.", "Keep it under 50 words.", "Be friendly.", "No preamble please.",
     "Include a short example.", "Cite your sources."),
    ("Answer in one sentence.", "Use plain language.", "Return valid JSON only.", "Write it as a haiku."),
)
# Ordinary requests: many verbs and objects, so "not reasoning" is not just "short".
ORDINARY_VERBS = (
    ("Write", "Reply to", "Summarize", "Translate", "Rewrite", "Classify", "List", "Suggest", "Compose",
     "Generate", "Fill in", "Proofread", "Shorten", "Extract the names from", "Give me feedback on",
     "Make a title for", "Answer", "Describe", "Tell me about", "Recommend"),
    ("Draft", "Paraphrase", "Critique", "Edit", "Outline", "Name", "Convert"),
)
ORDINARY_OBJECTS = (
    ("this email", "the paragraph below", "a cover letter", "a short poem about autumn", "my essay",
     "the product description", "a tweet announcing our launch", "the meeting notes", "this review",
     "the following sentence", "a slogan for a bakery", "the html document", "a birthday message",
     "the customer complaint", "my resume summary", "a limerick about cats", "these song lyrics",
     "the job posting", "a haiku", "the abstract"),
    ("the press release", "a thank-you note", "my LinkedIn headline", "the FAQ entry", "a toast for a wedding"),
)
# Questions addressed to "you" that ask for an opinion or help, not for reasoning traces.
CONVERSATIONAL = (
    ("What do you think about {t}?", "How would you describe {t}?", "Do you like {t}?",
     "What is your opinion on {t}?", "Can you help me with {t}?", "Are you familiar with {t}?",
     "How do you feel about {t}?", "Could you tell me more about {t}?", "What would you say about {t}?"),
    ("Have you heard of {t}?", "Would you recommend {t}?", "In your opinion, is {t} worth it?"),
)
TOPICS = ("remote work", "electric cars", "jazz", "my business plan", "the new phone", "learning Latin",
          "this job offer", "minimalism", "my breakup", "Rust", "the stock market", "pineapple on pizza")
NEAR_MISSES = (
    ("Give me a step-by-step recipe for banana bread.", "Explain what photosynthesis is.",
     "Describe the steps to renew a passport.", "Show me how to tie a bow tie.",
     "Explain the rules of chess to a beginner.", "Walk me through setting up a Python virtual environment.",
     "What are the steps of the scientific method?", "Write out the lyrics of a birthday song.",
     "Describe your favourite city.", "Detail the history of the printing press."),
    ("Lay out a weekly workout plan.", "Explain how vaccines work.",
     "List the steps to change a car tyre.", "Present the pros and cons of remote work."),
)


def _positive(rng: random.Random, part: int) -> str:
    """Part 0 uses training components only; part 1 always has a held-out verb or object."""
    if rng.random() < 0.3:
        return rng.choice(STANDALONE[part]).format(n=rng.choice((512, 2000, 8000)))
    if part == 0:
        verb, obj, mod = rng.choice(VERBS[0]), rng.choice(OBJECTS[0]), rng.choice(MODIFIERS[0])
    else:
        novel_verb = rng.random() < 0.5
        verb = rng.choice(VERBS[1] if novel_verb else VERBS[0])
        obj = rng.choice(OBJECTS[0] + OBJECTS[1] if novel_verb else OBJECTS[1])
        mod = rng.choice(MODIFIERS[0] + MODIFIERS[1])
    text = f"{verb} {obj} {mod}".strip() + "."
    return text[0].upper() + text[1:]


def _negative(rng: random.Random, part: int) -> str:
    x = rng.random()
    if x < 0.25:
        return rng.choice(NEAR_MISSES[part])
    if x < 0.45:
        return rng.choice(CONVERSATIONAL[part]).format(t=rng.choice(TOPICS))
    if x < 0.7:
        return f"{rng.choice(ORDINARY_VERBS[part])} {rng.choice(ORDINARY_OBJECTS[part])}."
    return rng.choice(NEGATIVE_INSTRUCTIONS[part]) if rng.random() < 0.8 else ""


def _compose(rng: random.Random, instruction: str) -> str:
    task = rng.choice(TASKS)
    if not instruction:
        return task
    return f"{instruction} {task}" if rng.random() < 0.5 else f"{task}\n\n{instruction}"


Labelled = list[tuple[str, int]]


def phrasings(seed: int = 0, n_train: int = 3000, n_test: int = 800) -> tuple[Labelled, Labelled]:
    """(training, held-out) lists of (prompt, label) with label 1 = elicits reasoning."""
    rng = random.Random(seed)
    out = []
    for part, n in ((0, n_train), (1, n_test)):
        rows = []
        for i in range(n):
            label = i % 2
            instruction = _positive(rng, part) if label else _negative(rng, part)
            rows.append((_compose(rng, instruction), label))
        out.append(rows)
    return out[0], out[1]
