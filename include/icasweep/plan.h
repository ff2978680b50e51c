/* `icasweep plan`: what a grid will cost on this node, from a measured rate.
 *
 * The rate (model GFLOP/s per core, FP32 and bf16) comes from a few
 * training steps of each distinct model of the grid on one thread, with
 * one chunk of contexts as the batch and at most 4 layers (a step's work is
 * its chunks' and its layers', so the rate per FLOP carries over to the
 * full batch and depth), or from a rate file that
 * icasweep-bench --rate-file writes, or from --gflops. Core-hours are the
 * run's FLOPs (config_run_flops) over that rate; the Slurm --time for R
 * ranks (R - 1 workers, rank 0 the master) is the longest worker's share
 * when the runs go out longest first, as the sweep sends them, plus a
 * margin. */
#ifndef ICASWEEP_PLAN_H
#define ICASWEEP_PLAN_H

#include "icasweep/config.h"
#include "icasweep/error.h"

/* A rate file: lines "config=NAME precision=fp32|bf16 threads=T gflops=G
 * layers=L embd=E heads=H points=N batch=B ...", other keys ignored. */
typedef struct {
    int precision, threads, layers, embd, heads, points;
    double gflops;
} plan_rate;

/* Reads every well-formed line of a rate file into *rates (malloc'd). A
 * line that is not of the form above is an error naming the file and line. */
int plan_read_rates(const char *path, plan_rate **rates, int *n, icas_err *err);

/* The one-thread rate of the line that fits cfg best in precision prec: the
 * same model sizes if there is one, else the nearest in parameter count;
 * 0 when the file has no one-thread line of that precision. */
double plan_rate_for(const plan_rate *rates, int n, const run_config *cfg, int prec);

/* Model GFLOP/s of cfg's model in precision prec on one thread, timed over
 * a few steps of one chunk of contexts and at most 4 layers (the best of
 * them: on a shared node the others include other processes' time). */
int plan_measure_rate(const run_config *cfg, int prec, double *gflops, icas_err *err);

/* Hours until the last of n runs (hours[i] each) is done on `workers`
 * workers taking them longest first. */
double plan_makespan(const double *hours, int n, int workers);

/* argv[0] is "plan". Returns an exit status (error.h). */
int plan_main(int argc, char **argv);

#endif
