/* The subcommands of the `mammo` command line, one function each (argv[0] is the subcommand). Each
 * returns the process exit status: 0 on success, 1 after printing one clear line on failure. */
#ifndef MM_COMMANDS_H
#define MM_COMMANDS_H

typedef int (*mm_command_fn)(int argc, char **argv);

typedef struct mm_command {
    const char *name;
    mm_command_fn fn;
    const char *about;
} mm_command;

int mm_cmd_version(int argc, char **argv);
int mm_cmd_devices(int argc, char **argv);
int mm_cmd_dicom(int argc, char **argv);
int mm_cmd_index(int argc, char **argv);
int mm_cmd_prep(int argc, char **argv);
int mm_cmd_patches(int argc, char **argv);
int mm_cmd_forward(int argc, char **argv);
int mm_cmd_summary(int argc, char **argv);
int mm_cmd_plan(int argc, char **argv);
int mm_cmd_eval(int argc, char **argv);
int mm_cmd_report(int argc, char **argv);
int mm_cmd_train_patch(int argc, char **argv);
int mm_cmd_train_image(int argc, char **argv);
int mm_cmd_predict(int argc, char **argv);
int mm_cmd_bench(int argc, char **argv);
int mm_cmd_synth(int argc, char **argv);

#endif
