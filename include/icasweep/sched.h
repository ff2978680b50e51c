/* The MPI sweep: rank 0 is the master, hands grid runs to ranks as they
 * become free (longest first), receives results and writes each to the one
 * result file as it arrives; resumable, interruptible, lock-protected. */
#ifndef ICASWEEP_SCHED_H
#define ICASWEEP_SCHED_H

/* `icasweep sweep GRID.yaml -o RESULTS.h5 [...]`; returns an exit status
 * (cli.h). Calls MPI_Init and MPI_Finalize itself. */
int sched_main(int argc, char **argv);

#endif
