;; Imports raw TCP sockets, which no grant allows.
(component
  (import "wasi:sockets/tcp@0.2.12" (instance
    (export "f" (func (result u32)))
  ))
)
