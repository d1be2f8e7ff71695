/* The training set's pixel mean (the paper: "we calculate the pixel-wise mean for the images on the
 * train set and use this value for pixel-wise mean centering"): one scalar, the mean of the
 * rescaled pixel values over all training images, in the units the loader subtracts it in
 * (mm_loader_opts.mean). The trainer stores it with the model. Reference values: 52.18 for
 * CBIS-DDSM at 1152x896, 44.33 for INbreast, both with rescale 255/65535. */
#ifndef MM_PIXEL_MEAN_H
#define MM_PIXEL_MEAN_H

#include "../runtime/error.h"
#include "loader.h"

/* *mean = rescale * (sum of all pixels / number of pixels) over the items' PNGs, each first resized
 * to height x width as the loader does (so every image weighs the same, like the pixels the network
 * sees); height = width = 0 keeps each image's own size (images then weigh by their pixel count).
 * No augmentation. n_threads decoding threads (0 = all CPUs); the result does not depend on it
 * (per-image sums are added in item order). A bad file: its tier-1 status, naming it. */
mm_status mm_pixel_mean(double *mean, const mm_loader_item *items, int n_items, int height,
                        int width, float rescale, int n_threads);

#endif
