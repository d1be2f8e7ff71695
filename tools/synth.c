/* `mammo synth` entry point: checks the options and runs one of the dataset layouts. */
#include <string.h>

#include "fs.h"
#include "synth_layout.h"

mm_status mm_synth_generate(const mm_synth_opts *o, mm_synth_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    if (!o->out_dir || !o->out_dir[0]) return mm_fail(MM_ERR_ARG, "mammo synth: --out is required");
    if (o->patients < 1 || o->patients > 100000)
        return mm_fail(MM_ERR_ARG, "mammo synth: --patients %d: give 1 to 100000", o->patients);
    if ((o->height > 0) != (o->width > 0))
        return mm_fail(MM_ERR_ARG, "mammo synth: give --height and --width together");
    if (o->height > 0 && (o->height < 64 || o->width < 64 || o->height > 8192 || o->width > 8192))
        return mm_fail(MM_ERR_ARG, "mammo synth: --height/--width %d x %d: each must be 64 to 8192",
                       o->height, o->width);
    MM_TRY(mm_fs_mkdirs(o->out_dir));
    return o->layout == MM_SYNTH_CBIS_DDSM ? mm_synth_cbis(o, sum) : mm_synth_inbreast(o, sum);
}
