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
/// <para>The export fixes the batch dimension to 1; both graphs are loaded with it freed (<see cref="OnnxBatchDimension"/>),
/// so <see cref="EmbedBatch"/> and <see cref="FeaturesBatch"/> run up to <see cref="MaxBatch"/> images per call. A batch
/// gives exactly the single-image vectors (tested), as does any intra-op thread count.</para>
/// </summary>
public sealed class ResNet18Embedder : IImageEmbedder
{
    public const int InputSize = 224;
    /// <summary>Images per ONNX run: the 14 windows of a sample fit in one; larger batches only cost memory (about 3 MB of activations per image).</summary>
    public const int MaxBatch = 16;
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
        // Idle intra-op threads sleep instead of spinning: on a 2-core machine shared with other work a spinning thread
        // takes the core its partner needs.
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        _preprocess = new InferenceSession(OnnxBatchDimension.Free(File.ReadAllBytes(preprocessPath)), options);
        _model = new InferenceSession(OnnxBatchDimension.Free(File.ReadAllBytes(modelPath)), options);
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

    public float[] Embed(SKBitmap image) => EmbedBatch([image])[0];

    public float[][] EmbedBatch(IReadOnlyList<SKBitmap> images) => FeaturesBatch(images).Select(f => VectorMath.Normalize(f)).ToArray();

    /// <summary>The raw 512-d global-average-pool output (not normalised): the feature KID compares.</summary>
    public float[] Features(SKBitmap image) => FeaturesBatch([image])[0];

    /// <summary><see cref="Features"/> of each image, in order, <see cref="MaxBatch"/> images per ONNX run.</summary>
    public float[][] FeaturesBatch(IReadOnlyList<SKBitmap> images)
    {
        var result = new float[images.Count][];
        for (int start = 0; start < images.Count; start += MaxBatch)
        {
            int count = Math.Min(MaxBatch, images.Count - start);
            var input = ToRgbPlanes(images, start, count);
            using var prepared = _preprocess.Run([NamedOnnxValue.CreateFromTensor(_preprocessInput, input)]);
            var preprocessed = prepared.First().AsTensor<float>();
            using var output = _model.Run([NamedOnnxValue.CreateFromTensor(_modelInput, preprocessed)]);
            var features = output.First().AsEnumerable<float>().ToArray();
            if (features.Length != count * Dimension) throw new InvalidOperationException($"ResNet18 returned {features.Length} values for {count} image(s), expected {count * Dimension}");
            for (int i = 0; i < count; i++) result[start + i] = features.AsSpan(i * Dimension, Dimension).ToArray();
        }
        return result;
    }

    /// <summary>Resizes each image to 224x224 and lays out raw 0..255 RGB planes [count,3,224,224], as ML.NET's ExtractPixels does by default.</summary>
    static DenseTensor<float> ToRgbPlanes(IReadOnlyList<SKBitmap> images, int start, int count)
    {
        const int plane = InputSize * InputSize;
        var tensor = new DenseTensor<float>([count, 3, InputSize, InputSize]);
        var span = tensor.Buffer.Span;
        for (int n = 0; n < count; n++)
        {
            using var resized = ImageOps.Resize(images[start + n], InputSize, InputSize);
            var bytes = resized.Bytes;
            var planes = span.Slice(n * 3 * plane, 3 * plane);
            for (int i = 0; i < plane; i++)
            {
                planes[i] = bytes[i * 4];
                planes[plane + i] = bytes[i * 4 + 1];
                planes[2 * plane + i] = bytes[i * 4 + 2];
            }
        }
        return tensor;
    }

    public void Dispose()
    {
        _preprocess.Dispose();
        _model.Dispose();
    }
}
