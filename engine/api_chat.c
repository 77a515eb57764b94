/* api_chat.c: chat turns over a session's KV cache, shared by `phi3c chat` and `phi3c serve`:
 * render the conversation, reuse the longest cached prefix (only the new part is prefilled), and
 * drop the oldest turns when the conversation no longer fits in the context. */
#include "api_internal.h"

#include <string.h>

void p3_api_chat_forget(phi3c_session *session) {
    session->chat_npast = -1;
    session->chat_len = 0;
}

static bool chat_text_valid(const phi3c_session *session) {
    return session->chat_text && session->chat_npast > 0 &&
           session->chat_npast == session->s->n_past;
}

static bool chat_append(phi3c_session *session, const char *text, size_t len) {
    if (session->chat_len + len + 1 > session->chat_cap) {
        size_t cap = 2 * (session->chat_len + len + 1);
        char *grown = p3_realloc(session->chat_text, cap);
        if (!grown) return false;
        session->chat_text = grown;
        session->chat_cap = cap;
    }
    if (len) memcpy(session->chat_text + session->chat_len, text, len);
    session->chat_len += len;
    session->chat_text[session->chat_len] = '\0';
    return true;
}

void p3_api_chat_extend(phi3c_session *session, const char *text, size_t len) {
    /* no check of n_past here: a lookup draft may already be in the cache; phi3c_chat_prepare
     * checks that the cache holds exactly the reported tokens */
    if (!session->chat_text || session->chat_npast <= 0) return;
    if (!chat_append(session, text ? text : "", text ? len : 0)) {
        p3_api_chat_forget(session);
        return;
    }
    session->chat_npast++; /* the token is fed next */
}

/* Remembers `text` as what the cache will hold once `npast` positions are fed. */
static void chat_remember(phi3c_session *session, const char *text, size_t len, int npast) {
    p3_api_chat_forget(session);
    if (chat_append(session, text, len)) session->chat_npast = npast;
}

/* Text path: the cache holds an earlier rendering that is a prefix of `text` (the previous turn's
 * prompt and answer), so only the rest is tokenized and fed, exactly as the cache was built.
 * Leaves *n_ids 0 when the path does not apply. */
static p3_status reuse_text(phi3c_session *session, const char *text, size_t len, int32_t **ids,
                            size_t *n_ids, p3_error *err) {
    *ids = NULL;
    *n_ids = 0;
    size_t cached = session->chat_len;
    if (!chat_text_valid(session) || cached >= len || memcmp(text, session->chat_text, cached))
        return PHI3C_OK;
    return phi3c_tokenize(session->model, text + cached, len - cached, false, ids, n_ids, err);
}

/* Token path: the longest common prefix of the cache and the prompt's tokens, leaving at least
 * one token to feed (its logits start the answer). */
static int common_prefix(const p3_session *s, const int32_t *ids, size_t n) {
    int keep = 0;
    while (keep < s->n_past && (size_t)keep + 1 < n && s->history[keep] == ids[keep]) keep++;
    return keep;
}

/* Truncates s to `keep` positions, or empties it when a LongRoPE cache cannot be cut there. */
static int truncate_or_reset(p3_session *s, int keep) {
    if (p3_session_truncate(s, keep, NULL) == PHI3C_OK) return keep;
    p3_session_reset(s);
    return 0;
}

int phi3c_session_keep_prefix(phi3c_session *session, const int32_t *ids, size_t n) {
    p3_session *s = session->s;
    return truncate_or_reset(s, ids && n ? common_prefix(s, ids, n) : 0);
}

static size_t leading_system(const phi3c_chat_message *msgs, size_t n) {
    size_t i = 0;
    while (i < n && msgs[i].role && strcmp(msgs[i].role, "system") == 0) i++;
    return i;
}

/* Drops the oldest turn after the leading system messages: a message, and the assistant answer
 * that follows it (never the last message). False when only the last message is left. */
static bool drop_oldest_turn(phi3c_chat_message *msgs, size_t *n, size_t *n_dropped) {
    size_t fixed = leading_system(msgs, *n);
    if (*n - fixed <= 1) return false;
    size_t count = 1;
    if (*n - fixed >= 3 && msgs[fixed + 1].role && strcmp(msgs[fixed + 1].role, "assistant") == 0)
        count = 2;
    memmove(&msgs[fixed], &msgs[fixed + count], (*n - fixed - count) * sizeof *msgs);
    *n -= count;
    *n_dropped += count;
    return true;
}

static p3_status prompt_too_long(size_t n_prompt, int reserve, int n_ctx, p3_error *err) {
    return p3_fail(err, PHI3C_ERR_CONTEXT_FULL,
                   "the prompt of %zu tokens plus %d kept for the answer exceeds the context of %d "
                   "positions",
                   n_prompt, reserve, n_ctx);
}

/* Renders msgs[0..n) and finds what to feed: the text path when it applies and fits, else the
 * whole prompt's tokens with the cache truncated to their common prefix. *fits false when the
 * prompt and the reserve exceed the context. */
static p3_status plan_turn(phi3c_session *session, const phi3c_chat_message *msgs, size_t n,
                           int reserve, phi3c_chat_turn *turn, bool *fits, p3_error *err) {
    p3_session *s = session->s;
    char *text = NULL;
    size_t len = 0;
    *fits = false;
    p3_status st = phi3c_chat_render(session->model, msgs, n, true, &text, &len, err);
    if (st == PHI3C_OK) st = reuse_text(session, text, len, &turn->ids, &turn->n_ids, err);
    if (st == PHI3C_OK && turn->n_ids > 0) {
        turn->n_reused = s->n_past;
        turn->n_prompt = (size_t)s->n_past + turn->n_ids;
        if (turn->n_prompt + (size_t)reserve <= (size_t)s->n_ctx) *fits = true;
    }
    if (st == PHI3C_OK && !*fits) {
        phi3c_free(turn->ids);
        int32_t *all = NULL;
        size_t n_all = 0;
        st = phi3c_tokenize(session->model, text, len, false, &all, &n_all, err);
        if (st == PHI3C_OK && n_all == 0)
            st = p3_fail(err, PHI3C_ERR_INVALID_ARG, "chat: the conversation renders empty");
        if (st == PHI3C_OK) {
            turn->n_prompt = n_all;
            *fits = n_all + (size_t)reserve <= (size_t)s->n_ctx;
            int keep = 0;
            if (*fits) /* a prompt that does not fit leaves the cache as it was */
                keep = truncate_or_reset(s, common_prefix(s, all, n_all));
            turn->n_reused = keep;
            turn->n_ids = n_all - (size_t)keep;
            memmove(all, all + keep, turn->n_ids * sizeof *all);
            turn->ids = all;
        }
    }
    if (st == PHI3C_OK && *fits) chat_remember(session, text, len, (int)turn->n_prompt);
    phi3c_free(text);
    return st;
}

phi3c_status phi3c_chat_prepare(phi3c_session *session, const phi3c_chat_message *messages,
                                size_t n_messages, const phi3c_chat_params *params,
                                phi3c_chat_turn *turn, phi3c_error *err) {
    memset(turn, 0, sizeof *turn);
    if (!session || (!messages && n_messages))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "chat_prepare: NULL argument");
    int n_ctx = session->s->n_ctx;
    int reserve = params ? params->reserve : P3_MIN(64, n_ctx / 4);
    if (reserve < 0 || reserve >= n_ctx)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "chat: reserve %d of a context of %d", reserve,
                       n_ctx);
    phi3c_chat_message *msgs = p3_calloc(n_messages ? n_messages : 1, sizeof *msgs);
    if (!msgs) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory preparing the chat");
    memcpy(msgs, messages, n_messages * sizeof *msgs);
    size_t n = n_messages;
    p3_status st;
    for (;;) {
        bool fits = false;
        st = plan_turn(session, msgs, n, reserve, turn, &fits, err);
        if (st != PHI3C_OK || fits) break;
        size_t n_prompt = turn->n_prompt;
        phi3c_free(turn->ids);
        turn->ids = NULL;
        turn->n_ids = 0;
        if (!(params && params->drop_turns) || !drop_oldest_turn(msgs, &n, &turn->n_dropped)) {
            st = prompt_too_long(n_prompt, reserve, n_ctx, err);
            break;
        }
    }
    p3_free(msgs);
    if (st != PHI3C_OK) {
        phi3c_free(turn->ids);
        size_t n_prompt = turn->n_prompt;
        memset(turn, 0, sizeof *turn);
        turn->n_prompt = n_prompt;
    }
    return st;
}
