// Words the scripts write as the server writes them (web_service/views.py).

// ``word`` as said of ``count`` things: "task" for 1, "tasks" for 0 or 2.
export const plural = (word, count) => (count === 1 ? word : `${word}s`);
