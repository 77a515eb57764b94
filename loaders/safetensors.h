/* safetensors.h: the safetensors reader (single file or sharded with model.safetensors.index.json):
 * header checks and zero-copy tensor views into mapped files. */
#ifndef P3_LOADERS_SAFETENSORS_H
#define P3_LOADERS_SAFETENSORS_H

#include "source.h"

/* Largest header accepted (the safetensors library's own limit). */
#define P3_SAFETENSORS_MAX_HEADER 100000000u

/* Parses one safetensors file held in memory (8-byte little-endian header length, JSON header,
 * data) and appends its tensors (views into data) to *tensors / *n_tensors (grown with
 * p3_realloc). Checks the header length, every dtype, shape product and data offset against the
 * file size, overlaps and alignment; ignores __metadata__. `what` names the file in messages. */
p3_status p3_safetensors_parse(const uint8_t *data, size_t size, const char *what,
                               p3_tensor **tensors, size_t *n_tensors, p3_error *err);

/* Maps the weights of a HF folder into src (files, tensors, file_bytes): the shards listed by
 * model.safetensors.index.json when it exists, else model.safetensors. Every tensor the index
 * names must be in the shard it names. */
p3_status p3_safetensors_open_dir(const char *dir, p3_model_source *src, p3_error *err);

/* Maps one .safetensors file into src. */
p3_status p3_safetensors_open_file(const char *path, p3_model_source *src, p3_error *err);

#endif /* P3_LOADERS_SAFETENSORS_H */
