# The CUDA emulator (cuemu.h): the CUDA backend with its own kernels compiled for the host, in the
# library mammo_cuemu, which the CUDA tests' twins (*_emu) link instead of mammo_core. Each
# .cu/.cuh file of kernels/cuda is rewritten by cuemu.sed into the build tree and compiled without
# strict aliasing (the kernels reinterpret vector loads, as nvcc allows); the kernels and the
# emulator get AddressSanitizer and UBSan where the compiler has them (MM_CUEMU_SANITIZE is then
# also what the twins link with).
file(GLOB MM_CUEMU_KERNELS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cu
     ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cuh)
set(MM_CUEMU_DIR ${CMAKE_BINARY_DIR}/cuemu/kernels/cuda)
set(MM_CUEMU_GENERATED)
foreach(src ${MM_CUEMU_KERNELS})
    get_filename_component(base ${src} NAME)
    string(REGEX REPLACE "\\.cu$" ".cc" base ${base})
    set(out ${MM_CUEMU_DIR}/${base})
    add_custom_command(OUTPUT ${out}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${MM_CUEMU_DIR}
        COMMAND sed -f ${CMAKE_SOURCE_DIR}/tests/cuemu/cuemu.sed ${src} > ${out}
        DEPENDS ${src} ${CMAKE_SOURCE_DIR}/tests/cuemu/cuemu.sed VERBATIM)
    list(APPEND MM_CUEMU_GENERATED ${out})
endforeach()
set(MM_CUEMU_CC ${MM_CUEMU_GENERATED})
list(FILTER MM_CUEMU_CC INCLUDE REGEX "\\.cc$")
set_source_files_properties(${MM_CUEMU_CC} PROPERTIES
    COMPILE_OPTIONS
    "-include;${CMAKE_SOURCE_DIR}/tests/cuemu/cuemu.h;-Wno-unknown-pragmas;-fno-strict-aliasing")

# The emulator itself runs uninstrumented: the sanitizers are for the code under test (the
# kernels and the backend's C files), and instrumented fiber switches and naive convolutions
# made the emulated tests many times slower. Device allocations keep their redzones (the
# sanitizer's allocator serves the whole process).
file(GLOB MM_CUEMU_OWN CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cuemu/*.cc)
if(NOT NCCL_INCLUDE_DIR) # NCCL emulated where its header is, as the real build links it
    list(REMOVE_ITEM MM_CUEMU_OWN ${CMAKE_SOURCE_DIR}/tests/cuemu/cuemu_nccl.cc)
endif()
set_source_files_properties(${MM_CUEMU_OWN} PROPERTIES COMPILE_OPTIONS "-fno-sanitize=all")

include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_FLAGS "-fsanitize=address,undefined")
set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=address,undefined")
check_cxx_source_compiles("int main() { return 0; }" MM_CUEMU_HAS_SANITIZERS)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
set(MM_CUEMU_SANITIZE)
set(MM_CUEMU_SANITIZE_COMPILE)
if(MM_CUEMU_HAS_SANITIZERS AND NOT MM_SANITIZE)
    set(MM_CUEMU_SANITIZE -fsanitize=address,undefined)
    set(MM_CUEMU_SANITIZE_COMPILE ${MM_CUEMU_SANITIZE} -fno-omit-frame-pointer
        -fno-sanitize-recover=undefined)
endif()

# The backend's C files as they are (they see the emulator's runtime, cuBLAS and cuDNN).
file(GLOB MM_CUEMU_BACKEND CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.c)

add_library(mammo_cuemu STATIC ${MM_CUEMU_GENERATED} ${MM_CUEMU_OWN} ${MM_CUEMU_BACKEND})
target_link_libraries(mammo_cuemu PUBLIC mm_base)
target_include_directories(mammo_cuemu PRIVATE ${CMAKE_SOURCE_DIR}/kernels/cuda)
target_compile_definitions(mammo_cuemu PRIVATE MM_CUEMU=1)
if(NCCL_INCLUDE_DIR)
    target_include_directories(mammo_cuemu PRIVATE ${NCCL_INCLUDE_DIR})
    target_compile_definitions(mammo_cuemu PRIVATE MM_HAVE_NCCL=1)
endif()
target_compile_options(mammo_cuemu PRIVATE ${MM_CUEMU_SANITIZE_COMPILE})
target_link_options(mammo_cuemu INTERFACE ${MM_CUEMU_SANITIZE})

# The command line on the emulated GPU: --device cuda end to end (tests/test_cli_cuda.c).
add_executable(mammo_emu ${CMAKE_SOURCE_DIR}/tools/main.c)
target_link_libraries(mammo_emu PRIVATE mammo_cuemu)
