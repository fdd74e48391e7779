/* sampler_batch.h — continuous batching of MDLM sampler jobs (sampler.h) at step granularity:
 * one step of several jobs, their forwards run as one lm_model.forward over all their
 * canvases. Jobs join and leave between steps (the caller keeps the list). Rows of a forward
 * do not depend on the other rows of its batch (NOTES.md), so a job's run is identical to
 * sampler_run alone.
 *
 * Jobs batch together when their canvases have the same length and their soft-masking top-k
 * is the same wherever it is on: the forward mixes with one top-k, and a job whose forward
 * carries no feedback (soft-masking off, or its first forward) gets rows of λ = 0, which
 * sm_mix_inputs leaves at the plain mask embedding — what a forward without soft-masking
 * computes. */
#ifndef SMDLM_SAMPLER_BATCH_H
#define SMDLM_SAMPLER_BATCH_H

#include "generate/sampler.h"

typedef struct sampler_batch sampler_batch;

sampler_batch *sampler_batch_new(const lm_model *m);
void sampler_batch_free(sampler_batch *b);

/* 1 when job may share a forward with the jobs of list[0..n). */
int sampler_batch_fits(const sampler_job *job, sampler_job *const *list, int n);

/* One step of each of the n jobs (of one model, sampler_batch_fits each other): rc[i] is what
 * sampler_job_step returned for jobs[i], or −1 for every job of a forward that failed. */
void sampler_batch_step(sampler_batch *b, sampler_job *const *jobs, int n, int *rc);
/* Forwards run by the steps so far: one per step in which any job asked for one (a batched
 * forward over several jobs counts once; a failed one too). */
long sampler_batch_forwards(const sampler_batch *b);

#endif
