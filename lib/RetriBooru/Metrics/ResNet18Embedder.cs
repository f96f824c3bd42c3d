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

    /// <param name="modelsDirectory">Folder holding DnnImageModels/ (defaults to the application folder, where the build copies it).</param>
    public ResNet18Embedder(string? modelsDirectory = null, int intraOpThreads = 0)
    {
        var root = modelsDirectory ?? AppContext.BaseDirectory;
        var preprocessPath = Path.Combine(root, PreprocessRelative);
        var modelPath = Path.Combine(root, ModelRelative);
        foreach (var path in new[] { preprocessPath, modelPath })
            if (!File.Exists(path))
                throw new FileNotFoundException(
                    $"{path}: ResNet18 ONNX file not found; it ships in NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 and the build copies it next to the application", path);
        using var options = new SessionOptions { IntraOpNumThreads = intraOpThreads, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        _preprocess = new InferenceSession(preprocessPath, options);
        _model = new InferenceSession(modelPath, options);
        _preprocessInput = _preprocess.InputMetadata.Keys.Single();
        _modelInput = _model.InputMetadata.Keys.Single();
    }

    public float[] Embed(SKBitmap image)
    {
        var input = ToRgbPlanes(image);
        using var prepared = _preprocess.Run([NamedOnnxValue.CreateFromTensor(_preprocessInput, input)]);
        var preprocessed = prepared.First().AsTensor<float>();
        using var output = _model.Run([NamedOnnxValue.CreateFromTensor(_modelInput, preprocessed)]);
        var features = output.First().AsEnumerable<float>().ToArray();
        if (features.Length != Dimension) throw new InvalidOperationException($"ResNet18 returned {features.Length} values, expected {Dimension}");
        return VectorMath.Normalize(features);
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
