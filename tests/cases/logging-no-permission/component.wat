;; Imports `wasi:logging/logging@0.1.0-draft` and nothing else.
(component
  (import "wasi:logging/logging@0.1.0-draft" (instance
    (export "f" (func (param "x" string) (result string)))
  ))
)
