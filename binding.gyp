# The io_uring addon of the storage server (storageserver/native), built by `npm install`.
# Linux only; where the kernel has no io_uring the storage server uses Node's fs (config io-engine).
{
  'targets': [
    {
      'target_name': 'flyfs_io',
      'sources': [ 'storageserver/native/flyfs-io.cc' ],
      'include_dirs': [ "<!(node -p \"require('node-addon-api').include_dir\")" ],
      'defines': [ 'NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_ADDON_API_DISABLE_DEPRECATED' ],
      'cflags!': [ '-fno-exceptions' ],
      'cflags_cc!': [ '-fno-exceptions' ],
      'cflags_cc': [ '-std=c++17', '-O2', '-Wall', '-Wextra' ],
    },
  ],
}
