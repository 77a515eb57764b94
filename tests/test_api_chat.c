/* test_api_chat.c: phi3c_chat_prepare on the demo model: a follow-up turn prefills only its new
 * part, a stateless request reuses the cached tokens it shares and ends with the same logits as a
 * fresh session, and a conversation that outgrows the context drops its oldest turns or fails
 * with the numbers. */
#include "harness.h"
#include "p3.h"
#include "phi3c.h"

#include <string.h>

#define DEMO "tools/demo-model"

static bool open_demo(p3_test_ctx *t, int n_ctx, phi3c_model **m, phi3c_session **s) {
    phi3c_error err = {0};
    phi3c_session_params sp = phi3c_session_params_default();
    sp.n_ctx = n_ctx;
    return CHECK_OK(phi3c_model_load(DEMO, NULL, m, &err), &err) &&
           CHECK_OK(phi3c_session_create(*m, &sp, s, &err), &err);
}

typedef struct answer {
    char text[1024];
    size_t len;
} answer;

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    answer *a = user;
    (void)token;
    if (text && a->len + len < sizeof a->text) {
        memcpy(a->text + a->len, text, len);
        a->len += len;
        a->text[a->len] = '\0';
    }
    return true;
}

static size_t count_tokens(p3_test_ctx *t, phi3c_model *m, const char *text) {
    phi3c_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(phi3c_tokenize(m, text, strlen(text), false, &ids, &n, &err), &err);
    phi3c_free(ids);
    return n;
}

/* The rendered conversation's tokens (no BOS: the template writes it). */
static int32_t *render_ids(p3_test_ctx *t, phi3c_model *m, const phi3c_chat_message *msgs, size_t n,
                           size_t *n_ids) {
    phi3c_error err = {0};
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    *n_ids = 0;
    if (CHECK_OK(phi3c_chat_render(m, msgs, n, true, &text, &len, &err), &err))
        CHECK_OK(phi3c_tokenize(m, text, len, false, &ids, n_ids, &err), &err);
    phi3c_free(text);
    return ids;
}

P3_TEST(api_chat_follow_up_turn_prefills_only_the_new_part) {
    phi3c_error err = {0};
    phi3c_model *m = NULL;
    phi3c_session *s = NULL;
    if (open_demo(t, 512, &m, &s)) {
        phi3c_chat_message msgs[4] = {{"system", "You are brief."}, {"user", "Once upon a time"}};
        phi3c_chat_turn turn;
        size_t n_first = 0;
        int32_t *first = render_ids(t, m, msgs, 2, &n_first);
        if (CHECK_OK(phi3c_chat_prepare(s, msgs, 2, NULL, &turn, &err), &err)) {
            CHECK_EQ_INT(turn.n_reused, 0);
            CHECK_EQ_INT(turn.n_ids, n_first);
            CHECK(first && memcmp(turn.ids, first, n_first * sizeof *first) == 0);
            CHECK_OK(phi3c_session_feed_tokens(s, turn.ids, turn.n_ids, NULL, &err), &err);
            phi3c_free(turn.ids);
        }
        answer a = {.len = 0};
        phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
        CHECK_OK(phi3c_generate(s, &greedy, 12, collect, &a, NULL, &err), &err);
        int cached = phi3c_session_n_past(s);
        msgs[2] = (phi3c_chat_message){"assistant", a.text};
        msgs[3] = (phi3c_chat_message){"user", "and then?"};
        /* the cache holds prompt + answer: only "<|end|>\n<|user|>\nand then?<|end|>\n..." */
        char *full = NULL, *prev = NULL;
        size_t full_len = 0, prev_len = 0;
        CHECK_OK(phi3c_chat_render(m, msgs, 4, true, &full, &full_len, &err), &err);
        CHECK_OK(phi3c_chat_render(m, msgs, 2, true, &prev, &prev_len, &err), &err);
        size_t cut = prev_len + a.len;
        if (CHECK(full && prev && full_len > cut) &&
            CHECK_OK(phi3c_chat_prepare(s, msgs, 4, NULL, &turn, &err), &err)) {
            CHECK_EQ_INT(turn.n_reused, cached);
            CHECK_EQ_INT(turn.n_ids, count_tokens(t, m, full + cut));
            CHECK_EQ_INT(turn.n_prompt, (size_t)cached + turn.n_ids);
            CHECK_EQ_INT(phi3c_session_n_past(s), cached);
            phi3c_free(turn.ids);
        }
        phi3c_free(full);
        phi3c_free(prev);
        phi3c_free(first);
    }
    phi3c_session_free(s);
    phi3c_model_free(m);
}

/* A request that shares only the system message and part of the first user message with the
 * cache keeps those positions, and the logits after feeding the rest equal a fresh session's. */
P3_TEST(api_chat_stateless_request_reuses_the_common_tokens) {
    phi3c_error err = {0};
    phi3c_model *m = NULL;
    phi3c_session *s = NULL, *fresh = NULL;
    if (open_demo(t, 512, &m, &s) && CHECK_OK(phi3c_session_create(m, NULL, &fresh, &err), &err)) {
        phi3c_chat_message a[] = {{"system", "You are brief."}, {"user", "Tell me about the sea"}};
        phi3c_chat_message b[] = {{"system", "You are brief."}, {"user", "Tell me about a cat"}};
        phi3c_chat_turn turn;
        if (CHECK_OK(phi3c_chat_prepare(s, a, 2, NULL, &turn, &err), &err))
            CHECK_OK(phi3c_session_feed_tokens(s, turn.ids, turn.n_ids, NULL, &err), &err);
        phi3c_free(turn.ids);
        size_t na = 0, nb = 0;
        int32_t *ia = render_ids(t, m, a, 2, &na), *ib = render_ids(t, m, b, 2, &nb);
        int common = 0;
        while (ia && ib && (size_t)common < na && (size_t)common < nb && ia[common] == ib[common])
            common++;
        CHECK(common > 3 && (size_t)common < nb);
        if (CHECK_OK(phi3c_chat_prepare(s, b, 2, NULL, &turn, &err), &err)) {
            CHECK_EQ_INT(turn.n_reused, common);
            CHECK_EQ_INT(turn.n_ids, nb - (size_t)common);
            CHECK(memcmp(turn.ids, ib + common, turn.n_ids * sizeof *ib) == 0);
            CHECK_OK(phi3c_session_feed_tokens(s, turn.ids, turn.n_ids, NULL, &err), &err);
            CHECK_OK(phi3c_session_feed_tokens(fresh, ib, nb, NULL, &err), &err);
            int vocab = phi3c_model_vocab_size(m);
            const float *x = phi3c_session_logits(s), *y = phi3c_session_logits(fresh);
            double bound = 1e-5 * p3_max_abs(y, (size_t)vocab);
            CHECK_MSG(p3_max_abs_diff(x, y, (size_t)vocab) <= bound, "reused cache differs");
            phi3c_free(turn.ids);
        }
        phi3c_free(ia);
        phi3c_free(ib);
    }
    phi3c_session_free(fresh);
    phi3c_session_free(s);
    phi3c_model_free(m);
}

P3_TEST(api_chat_full_context_drops_the_oldest_turns_or_fails_with_the_numbers) {
    phi3c_error err = {0};
    phi3c_model *m = NULL;
    phi3c_session *s = NULL;
    if (open_demo(t, 64, &m, &s)) {
        phi3c_chat_message msgs[] = {
            {"system", "Be brief."},
            {"user", "In the beginning God created the heaven and the earth."},
            {"assistant", "And the earth was without form, and void."},
            {"user", "And darkness was upon the face of the deep."},
            {"assistant", "And the Spirit moved upon the face of the waters."},
            {"user", "Let there be light"},
        };
        phi3c_chat_params keep = {.reserve = 16, .drop_turns = false};
        phi3c_chat_turn turn;
        CHECK_STATUS(phi3c_chat_prepare(s, msgs, 6, &keep, &turn, &err), PHI3C_ERR_CONTEXT_FULL);
        CHECK_MSG(strstr(err.message, "exceeds the context of 64"), "%s", err.message);
        CHECK(turn.n_prompt > 48 && turn.ids == NULL);
        phi3c_chat_params drop = {.reserve = 16, .drop_turns = true};
        if (CHECK_OK(phi3c_chat_prepare(s, msgs, 6, &drop, &turn, &err), &err)) {
            CHECK(turn.n_dropped == 2 || turn.n_dropped == 4);
            CHECK(turn.n_prompt + 16 <= 64);
            /* what is fed is the system message and the last turns, rendered */
            size_t n_want = 0;
            phi3c_chat_message kept[6];
            kept[0] = msgs[0];
            memcpy(kept + 1, msgs + 1 + turn.n_dropped, (5 - turn.n_dropped) * sizeof *msgs);
            int32_t *want = render_ids(t, m, kept, 6 - turn.n_dropped, &n_want);
            CHECK_EQ_INT(turn.n_ids, n_want);
            CHECK(want && memcmp(turn.ids, want, n_want * sizeof *want) == 0);
            phi3c_free(want);
            phi3c_free(turn.ids);
        }
        phi3c_chat_message alone[] = {
            {"user", "In the beginning God created the heaven and the earth. And the earth was "
                     "without form, and void; and darkness was upon the face of the deep. And the "
                     "Spirit of God moved upon the face of the waters. And God said, Let there be "
                     "light: and there was light. And God saw the light, that it was good: and God "
                     "divided the light from the darkness."}};
        CHECK_STATUS(phi3c_chat_prepare(s, alone, 1, &drop, &turn, &err), PHI3C_ERR_CONTEXT_FULL);
    }
    phi3c_session_free(s);
    phi3c_model_free(m);
}
