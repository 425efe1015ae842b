;; Imports `wasi:keyvalue/atomics@0.2.0-draft` and nothing else.
(component
  (import "wasi:keyvalue/atomics@0.2.0-draft" (instance
    (export "f" (func (param "x" string) (result string)))
  ))
)
