using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>
/// ImageNet-pretrained ResNet18 (the CNTK export shipped in NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1),
/// run with ONNX Runtime; the offline default image embedder.
///
/// Preprocessing mirrors ML.NET's DnnImageFeaturizer exactly, by running the package's own two graphs in sequence:
/// the image is resized (stretched, Mitchell filter) to 224x224 and given as RGB planes with raw 0..255 values
/// [1,3,224,224]; ResNetPreprocess.onnx reorders the planes to BGR and subtracts a per-pixel ImageNet mean image
/// (about B 104, G 116, R 123; no division by a standard deviation), then ResNet18.onnx returns the global-average-pool
/// output [1,512,1,1]. We verified the reorder and the mean by feeding constant planes through the preprocessing graph.
/// The 512-d feature is L2-normalised. Its entries are post-ReLU (non-negative), so unrelated images still have a
/// cosine similarity well above 0: scores that use it subtract an unrelated-pair baseline.
/// </summary>
public sealed class ResNet18Embedder : IImageEmbedder
{
    public const int InputSize = 224;
    const string PreprocessRelative = "DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx";
    const string ModelRelative = "DnnImageModels/ResNet18Onnx/ResNet18.onnx";

    readonly InferenceSession _preprocess;
    readonly InferenceSession _model;
    readonly string _preprocessInput, _modelInput;

    public string Name => "resnet18-imagenet";
    public int Dimension => 512;

    /// <param name="modelsDirectory">
    /// Folder holding DnnImageModels/. When null, the first folder that has both files wins: the RetriBooru assembly's
    /// folder, the application folder (the build copies the models to both), then the NuGet package cache
    /// (a notebook kernel runs from elsewhere).
    /// </param>
    public ResNet18Embedder(string? modelsDirectory = null, int intraOpThreads = 0)
    {
        string[] candidates = modelsDirectory is not null ? [modelsDirectory] : DefaultModelFolders();
        var root = candidates.FirstOrDefault(c => File.Exists(Path.Combine(c, PreprocessRelative)) && File.Exists(Path.Combine(c, ModelRelative)))
            ?? throw new FileNotFoundException(
                $"ResNet18 ONNX files ({PreprocessRelative}, {ModelRelative}) not found under {string.Join(" or ", candidates)}; they ship in NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 and the build copies them next to the application");
        var preprocessPath = Path.Combine(root, PreprocessRelative);
        var modelPath = Path.Combine(root, ModelRelative);
        using var options = new SessionOptions { IntraOpNumThreads = intraOpThreads, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        _preprocess = new InferenceSession(preprocessPath, options);
        _model = new InferenceSession(modelPath, options);
        _preprocessInput = _preprocess.InputMetadata.Keys.Single();
        _modelInput = _model.InputMetadata.Keys.Single();
    }

    static string[] DefaultModelFolders()
    {
        var folders = new List<string>();
        var assemblyDir = Path.GetDirectoryName(typeof(ResNet18Embedder).Assembly.Location);
        if (!string.IsNullOrEmpty(assemblyDir)) folders.Add(assemblyDir);
        folders.Add(AppContext.BaseDirectory);
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        folders.Add(Path.Combine(packages, "microsoft.ml.dnnimagefeaturizer.resnet18", "0.23.1", "tools"));
        return folders.Distinct().ToArray();
    }

    public float[] Embed(SKBitmap image) => VectorMath.Normalize(Features(image));

    /// <summary>The raw 512-d global-average-pool output (not normalised): the feature KID compares.</summary>
    public float[] Features(SKBitmap image)
    {
        var input = ToRgbPlanes(image);
        using var prepared = _preprocess.Run([NamedOnnxValue.CreateFromTensor(_preprocessInput, input)]);
        var preprocessed = prepared.First().AsTensor<float>();
        using var output = _model.Run([NamedOnnxValue.CreateFromTensor(_modelInput, preprocessed)]);
        var features = output.First().AsEnumerable<float>().ToArray();
        if (features.Length != Dimension) throw new InvalidOperationException($"ResNet18 returned {features.Length} values, expected {Dimension}");
        return features;
    }

    /// <summary>Resizes to 224x224 and lays out raw 0..255 RGB planes, as ML.NET's ExtractPixels does by default.</summary>
    static DenseTensor<float> ToRgbPlanes(SKBitmap image)
    {
        using var resized = ImageOps.Resize(image, InputSize, InputSize);
        var bytes = resized.Bytes;
        var tensor = new DenseTensor<float>([1, 3, InputSize, InputSize]);
        var span = tensor.Buffer.Span;
        const int plane = InputSize * InputSize;
        for (int i = 0; i < plane; i++)
        {
            span[i] = bytes[i * 4];
            span[plane + i] = bytes[i * 4 + 1];
            span[2 * plane + i] = bytes[i * 4 + 2];
        }
        return tensor;
    }

    public void Dispose()
    {
        _preprocess.Dispose();
        _model.Dispose();
    }
}
