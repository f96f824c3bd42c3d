using System.Runtime.CompilerServices;

namespace RetriBooru.Runtime;

static class RetriBooruModuleInitializer
{
    /// <summary>
    /// Installs the native-library resolvers as soon as any RetriBooru type is touched, so code that calls
    /// TorchSharp directly (torch.NewDisposeScope() before anything else) still gets the libstdc++ fix.
    /// Registering only adds a fallback handler; it loads nothing and costs nothing on a healthy system.
    /// </summary>
#pragma warning disable CA2255 // a library module initializer is the point: the resolver must precede any TorchSharp call
    [ModuleInitializer]
    internal static void Initialize()
    {
        // Before libtorch (and its libgomp) can load: the OpenMP wait policy is read once, at load.
        OpenMpWaitPolicy.Apply();
        NativeTorchLoader.Register();
        NativeLibraryProbe.Register();
    }
#pragma warning restore CA2255
}
