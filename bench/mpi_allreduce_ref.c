/*
 * Open MPI's own all-reduce figure, for bench/mpi_scaling.ts to compare the Deno binding
 * with: the same in-place f32 sum MPI_Allreduce from C, on the same buffer sizes. Needs no
 * MPI headers (Open MPI's handles are its global data symbols, as in src/train/mpi.ts):
 *
 *   gcc -O2 -o /tmp/mpi_allreduce_ref bench/mpi_allreduce_ref.c -l:libmpi.so.40
 *   mpirun --allow-run-as-root --oversubscribe -np 2 /tmp/mpi_allreduce_ref
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern char ompi_mpi_comm_world[], ompi_mpi_float[], ompi_mpi_op_sum[];
int MPI_Init(int *argc, char ***argv);
int MPI_Comm_rank(void *comm, int *rank);
int MPI_Comm_size(void *comm, int *size);
int MPI_Allreduce(const void *send, void *recv, int count, void *type, void *op, void *comm);
int MPI_Barrier(void *comm);
int MPI_Finalize(void);
#define IN_PLACE ((void *)1)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int rank, size;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(ompi_mpi_comm_world, &rank);
  MPI_Comm_size(ompi_mpi_comm_world, &size);
  const int sizes[] = {4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20};
  if (rank == 0) printf("all-reduce of Open MPI from C (%d ranks):\n", size);
  for (int i = 0; i < 5; i++) {
    int n = sizes[i] / 4, reps = sizes[i] >= (4 << 20) ? 10 : 50;
    float *buf = calloc(n, sizeof(float));
    MPI_Allreduce(IN_PLACE, buf, n, ompi_mpi_float, ompi_mpi_op_sum, ompi_mpi_comm_world);
    MPI_Barrier(ompi_mpi_comm_world);
    double t0 = now();
    for (int r = 0; r < reps; r++) {
      MPI_Allreduce(IN_PLACE, buf, n, ompi_mpi_float, ompi_mpi_op_sum, ompi_mpi_comm_world);
    }
    double s = (now() - t0) / reps;
    if (rank == 0) {
      printf("  %6d KiB: %7.0f µs, %.2f GB/s (algorithm bandwidth)\n", sizes[i] / 1024, s * 1e6,
             sizes[i] / s / 1e9);
    }
    free(buf);
  }
  MPI_Finalize();
  return 0;
}
