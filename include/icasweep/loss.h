/* docs/science.md "Losses": Plackett-Luce and Bradley-Terry ranking losses over cosine
 * similarities, with their gradients with respect to the prediction. */
#ifndef ICASWEEP_LOSS_H
#define ICASWEEP_LOSS_H

#include "icasweep/config.h"

/* cos(p, y); 0 when either vector is zero. */
double loss_cosine(const float *p, const float *y, int d);

/* Indices 0..n-1 sorted by r_seen, highest first, ties by index. */
void loss_rank_order(const float *r_seen, int n, int *order);

/* The loss of one prediction p [d] against responses resp [n, d] ranked by
 * r_seen [n]. If dp is non-NULL, adds scale * dloss/dp to it.
 * PL: sum_j [-s_j + log sum_{k>=j} exp(s_k)], s in ranked order.
 * BT: mean over pairs r_a > r_b of -log sigmoid(s_a - s_b) (0 if no pair). */
double loss_one(loss_kind kind, const float *p, const float *resp,
                const float *r_seen, int n, int d, float scale, float *dp);

/* The loss of one context: predictions pred [N, d] (read at query tokens),
 * loss_n for n = 2..N-1 against responses 0..n-1, averaged over n.
 * If dpred is non-NULL, adds scale * dloss/dpred to it. */
double loss_context(loss_kind kind, const float *pred, const float *resp,
                    const float *r_seen, int N, int d, float scale,
                    float *dpred);

#endif
