"""One text, two spellings in the chat: a message names a task however its accents are
composed or its letters written (cased, full-width), and a message is stored in one form."""

from __future__ import annotations

from chat_service.agents.rules import TaskMention, match_title
from chat_service.schemas import ChatIn

DECOMPOSED, COMPOSED = "Cafe\u0301", "Caf\u00e9"


def test_a_task_is_named_however_its_accents_are_composed_or_its_letters_cased() -> None:
    tasks = [
        TaskMention(1, f"Pay the {COMPOSED} bill"),
        TaskMention(2, f"{DECOMPOSED} with Anna"),
        TaskMention(3, "\uff37\uff2f\uff32\uff2b review"),
    ]
    assert [t.id for t in match_title(f"{DECOMPOSED} bill", tasks)] == [1]
    assert [t.id for t in match_title(f"{COMPOSED} with anna", tasks)] == [2]
    assert [t.id for t in match_title("WORK REVIEW", tasks)] == [3]
    assert [t.id for t in match_title("work", tasks)] == [3]


def test_a_message_is_stored_composed_and_bounded_as_composed() -> None:
    message = ChatIn(message="e\u0301" * 4000).message
    assert message == "\u00e9" * 4000
