#include "icasweep/loss.h"

#include <math.h>
#include <stdlib.h>

/* PyTorch's cosine_similarity guards the norm product with eps = 1e-8; the
 * same guard keeps a zero prediction from producing NaN. */
#define COS_EPS 1e-8

double loss_cosine(const float *p, const float *y, int d)
{
    double py = 0, pp = 0, yy = 0;
    for (int j = 0; j < d; j++) {
        py += (double)p[j] * y[j];
        pp += (double)p[j] * p[j];
        yy += (double)y[j] * y[j];
    }
    double nrm = sqrt(pp * yy);
    return py / (nrm > COS_EPS ? nrm : COS_EPS);
}

void loss_rank_order(const float *r_seen, int n, int *order)
{
    /* insertion sort: stable, and n is at most a few dozen */
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && r_seen[order[j - 1]] < r_seen[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

/* ds/dp for s = cos(p, y): y / (|p||y|) - s p / |p|^2 */
static void add_cosine_grad(const float *p, const float *y, int d, double g,
                            double *dp)
{
    double py = 0, pp = 0, yy = 0;
    for (int j = 0; j < d; j++) {
        py += (double)p[j] * y[j];
        pp += (double)p[j] * p[j];
        yy += (double)y[j] * y[j];
    }
    double nrm = sqrt(pp * yy);
    if (nrm <= COS_EPS) {
        for (int j = 0; j < d; j++)
            dp[j] += g * y[j] / COS_EPS;
        return;
    }
    double s = py / nrm;
    for (int j = 0; j < d; j++)
        dp[j] += g * (y[j] / nrm - s * p[j] / pp);
}

double loss_one(loss_kind kind, const float *p, const float *resp,
                const float *r_seen, int n, int d, float scale, float *dp)
{
    int order[n];
    double s[n], ds[n];
    loss_rank_order(r_seen, n, order);
    for (int j = 0; j < n; j++) {
        s[j] = loss_cosine(p, resp + (size_t)order[j] * d, d);
        ds[j] = 0;
    }
    double loss = 0;
    if (kind == LOSS_PL) {
        /* loss = sum_j [-s_j + log Z_j], Z_j = sum_{k>=j} exp(s_k); cosines
         * lie in [-1, 1], so exp cannot overflow and no max-shift is needed.
         * dloss/ds_k = -1 + sum_{j<=k} exp(s_k) / Z_j */
        double Z[n], e[n];
        double acc = 0;
        for (int j = n - 1; j >= 0; j--) {
            e[j] = exp(s[j]);
            acc += e[j];
            Z[j] = acc;
        }
        double inv_sum = 0;
        for (int j = 0; j < n; j++) {
            loss += -s[j] + log(Z[j]);
            inv_sum += 1.0 / Z[j];
            ds[j] = -1.0 + e[j] * inv_sum;
        }
    } else {
        int pairs = 0;
        for (int a = 0; a < n; a++)
            for (int b = a + 1; b < n; b++)
                if (r_seen[order[a]] > r_seen[order[b]])
                    pairs++;
        if (pairs == 0)
            return 0;
        for (int a = 0; a < n; a++)
            for (int b = a + 1; b < n; b++) {
                if (!(r_seen[order[a]] > r_seen[order[b]]))
                    continue;
                double z = s[a] - s[b];
                /* -log sigmoid(z) = log(1 + exp(-z)); |z| <= 2 */
                loss += log1p(exp(-z)) / pairs;
                double g = -1.0 / (1.0 + exp(z)) / pairs;
                ds[a] += g;
                ds[b] -= g;
            }
    }
    if (dp) {
        double dpd[d];
        for (int j = 0; j < d; j++)
            dpd[j] = 0;
        for (int j = 0; j < n; j++)
            add_cosine_grad(p, resp + (size_t)order[j] * d, d, ds[j], dpd);
        for (int j = 0; j < d; j++)
            dp[j] += (float)(scale * dpd[j]);
    }
    return loss;
}

double loss_context(loss_kind kind, const float *pred, const float *resp,
                    const float *r_seen, int N, int d, float scale,
                    float *dpred)
{
    double total = 0;
    int terms = N - 2;
    for (int n = 2; n < N; n++)
        total += loss_one(kind, pred + (size_t)n * d, resp, r_seen, n, d,
                          scale / terms, dpred ? dpred + (size_t)n * d : NULL);
    return total / terms;
}
