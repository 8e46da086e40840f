"""MATH answers (`math/accuracy/v1`, the `metamathqa_math` task: harness/tasks/math_competition.py):
the gold answer of a reference solution, the prediction in a model's output, and their
equivalence after the MATH paper's string normalisation.

Gold answer: the content of the last `\\boxed{...}` in the reference solution, braces balanced
(nested braces kept); `\\fbox{...}` only where the solution has no `\\boxed`; `\\boxed 5$` (a space,
no brace) gives the text up to the next `$`. MetaMath's script reads only the `\\boxed{` form: for
an item in another form it has no gold answer, and counts the item wrong when the model states an
answer and right when it states none; here such items are scored like the others.

Prediction (MetaMath's process_results): the text after the last "The answer is: " (case and the
colon matter), up to the first ".\\n", stripped, one trailing "." dropped, stripped again. No such
phrase: no prediction, the item counts as wrong (so an untuned base model scores about 0).

Equivalence (accuracy, `math/accuracy/v1`): prediction and gold are equal after the MATH paper's
string normalisation (its `is_equiv` / `strip_string`, as MetaMath and PiSSA use it), applied to
both, rule by rule in this order:
  1. line breaks removed;
  2. `\\!` (negative thin space) removed;
  3. `\\\\` becomes `\\`;
  4. `tfrac` and `dfrac` become `frac`;
  5. `\\left` and `\\right` removed;
  6. degrees `^{\\circ}` and `^\\circ` removed;
  7. escaped dollar signs `\\$` removed (a bare `$` is kept);
  8. units: where `\\text{ ` (with its space) occurs once, it and everything after it are removed
     ("10\\text{ cm}" -> "10"; "\\text{cm}" without the space stays);
  9. `\\%` removed (a bare `%` is kept);
 10. leading zeros: " ." -> " 0.", "{." -> "{0.", and a string starting with "." gets a "0";
     an empty string stays empty and is compared as such;
 11. a short left-hand side: where the string has exactly one "=" and at most two characters before
     it ("x = 5", "k=3"), only the right-hand side is kept;
 12. `\\sqrtX` -> `\\sqrt{X}` for a single character X after every `\\sqrt` not followed by "{"
     (applied before spaces go, so "\\sqrt 2" becomes "\\sqrt{ }2" and then "\\sqrt{}2", as upstream);
 13. all spaces removed;
 14. `\\fracAB` -> `\\frac{A}{B}` and `\\fracA{..}` -> `\\frac{A}{..}` for single characters A, B;
     a `\\frac` followed by a single character leaves the whole string unchanged;
 15. exactly "0.5" becomes `\\frac{1}{2}` (no other decimal is converted: 0.25 != \\frac14);
 16. "a/b" with exactly one "/" between two integers written plainly becomes `\\frac{a}{b}`
     ("-3/4" -> `\\frac{-3}{4}`, which is not `-\\frac{3}{4}`: these are string rules).
Where a rule meets text it cannot handle (upstream raises and falls back), the two strings are
compared exactly as extracted, unnormalised: `\\text{ ` more than once (8), `\\sqrt` or `\\frac` at
the very end (12, 14), or one "/" with a side that is not an integer, e.g. "x/2" (16).
Differences from published numbers to expect: SORSA's test.py also accepts answers equal under a
numeric/sympy comparison (its grader's math_equal), so it is more lenient than v1; all three
scripts decode with vLLM up to 2048 (MetaMath, SORSA) or 1024 (PiSSA) new tokens, here
`task.max_new_tokens`."""

from __future__ import annotations

ANSWER_MARK = "The answer is: "


def last_boxed(solution: str) -> str | None:
    """The content of the last `\\boxed{...}` (`\\fbox{...}` where there is no `\\boxed`), braces
    balanced; `\\boxed 5$` gives "5". None where there is none or its braces never close."""
    for command in ("\\boxed", "\\fbox"):
        start = solution.rfind(command)
        if start >= 0:
            break
    else:
        return None
    after = solution[start + len(command):]
    body = after.lstrip(" ")
    if body.startswith("{"):
        depth = 0
        for i, char in enumerate(body):
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return body[1:i]
        return None
    if after.startswith(" ") and body:
        return body.split("$")[0].strip() or None
    return None


def extract_answer(output: str) -> str | None:
    """MetaMath's reading of a response: what follows the last "The answer is: ", to the first
    ".\\n", without one trailing "."; None without the phrase."""
    if ANSWER_MARK not in output:
        return None
    answer = output.split(ANSWER_MARK)[-1].split(".\n")[0].strip()
    if answer.endswith("."):
        answer = answer[:-1]
    return answer.strip()


# --- the MATH paper's normalisation (rules numbered as in the module docstring) ---------------

def _fix_sqrt(text: str) -> str | None:
    head, *pieces = text.split("\\sqrt")
    out = head
    for piece in pieces:
        if not piece:
            return None  # `\sqrt` at the very end
        out += "\\sqrt" + (piece if piece[0] == "{" else "{" + piece[0] + "}" + piece[1:])
    return out


def _fix_fracs(text: str) -> str | None:
    head, *pieces = text.split("\\frac")
    out = head
    for piece in pieces:
        out += "\\frac"
        if not piece:
            return None  # `\frac` at the very end
        if piece[0] == "{":
            out += piece
        elif len(piece) < 2:
            return text  # upstream leaves the whole string as it was
        elif piece[1] == "{":
            out += "{" + piece[0] + "}" + piece[1:]
        else:
            out += "{" + piece[0] + "}{" + piece[1] + "}" + piece[2:]
    return out


def _fix_slash(text: str) -> str | None:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return None  # a side that is not an integer
    if text != f"{a}/{b}":
        return text  # e.g. "03/4": integers, but not written plainly
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def normalize(answer: str) -> str | None:
    """The MATH normal form of an answer string; None where a rule cannot handle it (compare the
    raw strings then)."""
    s = answer.replace("\n", "")                                  # 1
    s = s.replace("\\!", "")                                      # 2
    s = s.replace("\\\\", "\\")                                   # 3
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")      # 4
    s = s.replace("\\left", "").replace("\\right", "")            # 5
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")         # 6
    s = s.replace("\\$", "")                                      # 7
    if "\\text{ " in s:                                           # 8
        parts = s.split("\\text{ ")
        if len(parts) != 2:
            return None
        s = parts[0]
    s = s.replace("\\%", "")                                      # 9
    s = s.replace(" .", " 0.").replace("{.", "{0.")               # 10
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")                                          # 11
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _fix_sqrt(s)                                              # 12
    if s is None:
        return None
    s = s.replace(" ", "")                                        # 13
    s = _fix_fracs(s)                                             # 14
    if s is None:
        return None
    if s == "0.5":                                                # 15
        s = "\\frac{1}{2}"
    return _fix_slash(s)                                          # 16


def is_equiv(prediction: str | None, gold: str | None) -> bool:
    if prediction is None or gold is None:
        return False
    a, b = normalize(prediction), normalize(gold)
    if a is None or b is None:
        return prediction == gold
    return a == b


def is_correct(output: str, gold: str) -> bool:
    return is_equiv(extract_answer(output), gold)
