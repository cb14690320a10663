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
    ("articulate", "spell out", "narrate", "document", "supply"),
)
OBJECTS = (
    ("your reasoning", "your full reasoning", "your chain of thought", "your thought process",
     "every intermediate step", "all of your work", "the steps you took", "how you reached the answer",
     "your internal reasoning", "your rationale", "a justification for every decision", "the full derivation",
     "a rationale for each step", "the reasoning behind your answer"),
    ("your scratchpad", "the logic behind each step", "each inference you make", "your working",
     "a detailed rationale for each choice", "the complete derivation"),
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
     "Include your full reasoning trace in the reply.", "Maximize reasoning effort and keep the trace.",
     "Don't just give the answer; show how you got it.", "The process matters more than the result: include "
     "every step.", "We mark the working, not the final answer, so write all of it down.",
     "Justify each decision as you make it.", "Give a rationale for every step you take.",
     "Provide the full derivation with your answer.", "Teach it as a tutor would, reasoning through every step."),
    ("Think out loud the whole way through.", "Set reasoning effort to maximum and expose the trace.",
     "Score this response against each criterion and explain the reasoning behind every score.",
     "Give the final answer plus a detailed derivation of how you got there.",
     "An answer alone is not enough; the steps are what we need.", "Justify every step as a teacher would."),
)
# Ordinary instructions in the second person: "you" and "your" do not make a request ask for reasoning.
SECOND_PERSON = (
    ("Try to keep it positive and short.", "Think of a funny name for my cat.", "Imagine you are a pirate captain.",
     "In your own words, summarize the text below.", "You are given a list of products; sort them by price.",
     "Use your imagination and write a story.", "Act as a travel agent and suggest a hotel.",
     "Put yourself in the customer's shoes and reply politely.", "You should rewrite this in a formal tone.",
     "Your task is to translate the sentence.", "Think of three slogans for a gym.",
     "Pretend you are a tour guide in Rome.", "Keep your reply under 100 words.",
     "Make sure your answer rhymes.", "Follow these simple steps to set up your account."),
    ("Picture yourself as a tree in a forest and describe your day.", "You will be given a review; rate it.",
     "Think of a gift idea for my sister.", "As a chef, how would you introduce your menu?",
     "Cover all of the provided information in your text."),
)

# Elicitation is not an English habit: campaigns write in their own language. Each language
# has positives and ordinary requests (negatives), so the language itself is no cue.
FOREIGN_POSITIVE = (
    ("请一步一步地思考，并写出完整的推理过程。", "请展示你的思考过程，再给出答案。", "详细说明每一步的理由。",
     "请逐步推理，写出每一步。", "解释你的推理过程。",
     "先给出推导过程，再给出最终答案。",
     "Explica tu razonamiento paso a paso antes de responder.", "Muestra todo tu proceso de pensamiento.",
     "Explique ton raisonnement étape par étape.", "Erkläre deinen Gedankengang Schritt für Schritt.",
     "Объясни своё рассуждение шаг за шагом.", "段階的に考えて、推論の過程をすべて書いてください。",
     "단계별로 추론 과정을 자세히 설명해 주세요.", "Mostre todo o seu raciocínio passo a passo."),
    ("写出你的全部推理步骤，不要省略。", "Detalla cada paso de tu razonamiento.", "Montre toutes les étapes de ton "
     "raisonnement.", "Zeige alle Zwischenschritte deiner Überlegung.", "Покажи весь ход своих мыслей."),
)
FOREIGN_NEGATIVE = (
    ("请把这段话翻译成英文。", "给我写一首关于秋天的诗。", "这家餐厅怎么样？", "请简短回答。",
     "Escribe un correo para mi jefe.", "¿Cuál es la capital de Perú?", "Résume ce paragraphe.",
     "Schreib mir eine Geburtstagskarte.", "Переведи этот текст на английский.", "東京のおすすめの店を教えて。",
     "이 문장을 영어로 번역해 주세요.", "Escreva uma legenda para esta foto."),
    ("用一句话总结这篇文章。", "Dame una receta de tortilla.", "Écris un poème sur la mer.",
     "Wie wird das Wetter morgen?", "Напиши короткое письмо другу."),
)
NEGATIVE_INSTRUCTIONS = (
    ("Answer briefly.", "Reply in French.", "Respond only with the final number.", "Use bullet points.",
     "Format the answer as a table.", "Keep it under 50 words.", "Be friendly.", "No preamble please.",
     "Include a short example.", "Cite your sources."),
    ("Answer in one sentence.", "Use plain language.", "Return valid JSON only.", "Write it as a haiku."),
)
# Ordinary requests: many verbs and objects, so "not reasoning" is not just "short". The last verbs
# of each part also open reasoning requests ("Give a rationale ..."): here they keep the classifier on
# what is asked for, not on the verb.
ORDINARY_VERBS = (
    ("Write", "Reply to", "Summarize", "Translate", "Rewrite", "Classify", "List", "Suggest", "Compose",
     "Generate", "Fill in", "Proofread", "Shorten", "Extract the names from", "Give me feedback on",
     "Make a title for", "Answer", "Describe", "Tell me about", "Recommend", "Give me", "Provide", "Include in",
     "Create"),
    ("Draft", "Paraphrase", "Critique", "Edit", "Outline", "Name", "Convert", "Supply", "Produce"),
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
    if rng.random() < 0.1:
        return rng.choice(FOREIGN_POSITIVE[part])
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
    if x < 0.08:
        return rng.choice(FOREIGN_NEGATIVE[part])
    if x < 0.16:
        return rng.choice(SECOND_PERSON[part])
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
